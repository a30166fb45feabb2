// MetadataReader tests (tensor/metadata.h): the one reader every model-file loader uses; whole
// fields only, bounds, and errors naming the file and the field.
#include <catch2/catch.hpp>

#include "models/ntl.h"
#include "tensor/metadata.h"
#include "tensor/tensor.h"

using namespace normad;
using Catch::Contains;

TEST_CASE("metadata: fields are read whole, within bounds, and errors name the file and the field", "[metadata]") {
  const std::map<std::string, std::string> fields{{"a", "1.5"}, {"n", "42"}, {"bad", "1.5x"}, {"nan", "nan"},
                                                  {"space", " 5"}, {"big", "1e999"}, {"f", "1"}, {"two", "2"}};
  const MetadataReader m(fields, "m.safetensors");
  CHECK(m.has("a"));
  CHECK_FALSE(m.has("b"));
  CHECK(m.text("a") == "1.5");
  CHECK(m.number("a") == 1.5);
  CHECK(m.number("n") == 42.0);
  CHECK(m.integer("n", 0, 100) == 42);
  CHECK(m.flag("f"));
  CHECK_THROWS_WITH(m.text("b"), "m.safetensors: metadata field 'b' is missing");
  CHECK_THROWS_WITH(m.text("b", "not a model"), "m.safetensors: metadata field 'b' is missing (not a model)");
  CHECK_THROWS_WITH(m.number("bad"), "m.safetensors: metadata field 'bad' = '1.5x' is not a finite number");
  CHECK_THROWS_WITH(m.number("nan"), Contains("'nan' is not a finite number"));
  CHECK_THROWS_WITH(m.number("space"), Contains("' 5' is not a finite number"));
  CHECK_THROWS_WITH(m.number("big"), Contains("'1e999' is not a finite number"));
  CHECK_THROWS_WITH(m.integer("a", 0, 10), "m.safetensors: metadata field 'a' = '1.5' is not an integer in [0, 10]");
  CHECK_THROWS_WITH(m.integer("n", 0, 41), Contains("not an integer in [0, 41]"));
  CHECK_THROWS_WITH(m.flag("two"), Contains("'two' = '2' is not an integer in [0, 1]"));
}

TEST_CASE("metadata: the NTL architecture reader uses it (bounds before any allocation)", "[metadata]") {
  models::NtlConfig c;
  c.x_dim = 30;
  auto meta = models::ntl_metadata(models::ntl_defaults(c));
  CHECK(models::ntl_from_metadata(meta, "ntl.safetensors").x_dim == 30);
  meta["ntl.K"] = "100000";
  CHECK_THROWS_WITH(models::ntl_from_metadata(meta, "ntl.safetensors"),
                    "ntl.safetensors: metadata field 'ntl.K' = '100000' is not an integer in [2, 1000]");
  meta["ntl.K"] = "4";
  meta["ntl.tau"] = "0";
  CHECK_THROWS_WITH(models::ntl_from_metadata(meta, "ntl.safetensors"), Contains("'ntl.tau' = '0' is not a positive temperature"));
  meta.erase("ntl.z_dim");
  CHECK_THROWS_WITH(models::ntl_from_metadata(meta, "ntl.safetensors"), "ntl.safetensors: metadata field 'ntl.z_dim' is missing");
}
