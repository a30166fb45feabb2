// Catch2 v2 main for normad_tests (one ctest entry per TEST_CASE via catch_discover_tests).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
