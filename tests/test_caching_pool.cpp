// Tests of the caching pool (tensor/caching_pool.h) behind the CUDA allocator and the CPU
// allocator's large blocks, with a fake raw allocator (a byte budget, counted calls): runs anywhere.
// Math: rounding to 512 bytes, best fit within 2x, flush and retry on out-of-memory, and the CPU's
// bound (in use + cached <= 2x the peak in use, blocks cached longest ago handed back first).
#include <map>
#include <vector>

#include "helpers.h"
#include "tensor/caching_pool.h"

using namespace normad;

namespace {

// A fake raw allocator for the pool: a byte budget, counted calls.
struct FakeRaw {
  explicit FakeRaw(size_t capacity) : capacity(capacity) {}
  size_t capacity;
  size_t used = 0;
  int allocs = 0, frees = 0;
  std::map<void*, size_t> live;
  std::vector<void*> freed;  // in order (an address may come back from operator new later)

  static void* alloc(size_t bytes, void* ctx) {
    auto* f = static_cast<FakeRaw*>(ctx);
    if (f->used + bytes > f->capacity) return nullptr;  // simulated out-of-memory
    void* p = ::operator new(bytes);
    f->live[p] = bytes;
    f->used += bytes;
    ++f->allocs;
    return p;
  }
  static void free(void* p, size_t bytes, void* ctx) {
    auto* f = static_cast<FakeRaw*>(ctx);
    CHECK(f->live.at(p) == bytes);  // the pool hands back the size it asked for
    f->used -= f->live.at(p);
    f->live.erase(p);
    f->freed.push_back(p);
    ::operator delete(p);
    ++f->frees;
  }
  RawMemory raw() { return {&alloc, &free, this}; }
  ~FakeRaw() {
    for (auto& [p, n] : live) ::operator delete(p);
  }
};

}  // namespace

TEST_CASE("caching pool: sizes round up to 512-byte blocks", "[caching_pool]") {
  CHECK(CachingPool::round_up(0) == 512);  // a zero-size tensor still gets its own block
  CHECK(CachingPool::round_up(1) == 512);
  CHECK(CachingPool::round_up(512) == 512);
  CHECK(CachingPool::round_up(513) == 1024);
  FakeRaw raw{1 << 20};
  CachingPool pool(raw.raw());
  void* p = pool.allocate(1);
  REQUIRE(p);
  CHECK(raw.used == 512);
  CHECK(pool.in_use_bytes() == 512);
  pool.release(p, 1);
  CHECK(pool.in_use_bytes() == 0);
  CHECK(pool.cached_bytes() == 512);
}

TEST_CASE("caching pool: a released block serves the next request of its size", "[caching_pool]") {
  FakeRaw raw{1 << 20};
  CachingPool pool(raw.raw());
  void* p = pool.allocate(1000);  // a 1024-byte block
  pool.release(p, 1000);
  void* q = pool.allocate(600);  // also 1024
  CHECK(q == p);
  CHECK(raw.allocs == 1);
  CHECK(pool.cached_bytes() == 0);
  CHECK(pool.in_use_bytes() == 1024);
}

TEST_CASE("caching pool: best fit takes the smallest cached block that holds the request", "[caching_pool]") {
  FakeRaw raw{1 << 20};
  CachingPool pool(raw.raw());
  void* b4096 = pool.allocate(4096);
  void* b1024 = pool.allocate(1024);
  void* b2048 = pool.allocate(2048);
  pool.release(b4096, 4096);
  pool.release(b1024, 1024);
  pool.release(b2048, 2048);
  // 1100 rounds to 1536: 1024 is too small, 2048 is the best fit (4096 would also hold it).
  CHECK(pool.allocate(1100) == b2048);
  CHECK(pool.allocate(3000) == b4096);
  CHECK(pool.allocate(1024) == b1024);
  CHECK(raw.allocs == 3);
  CHECK(pool.cached_bytes() == 0);
}

TEST_CASE("caching pool: a cached block more than twice the request is left for larger ones", "[caching_pool]") {
  FakeRaw raw{1 << 20};
  CachingPool pool(raw.raw());
  void* big = pool.allocate(4096);
  pool.release(big, 4096);
  void* small = pool.allocate(512);
  CHECK(small != big);
  CHECK(raw.allocs == 2);
  CHECK(pool.cached_bytes() == 4096);
  CHECK(pool.allocate(2048) == big);  // exactly twice: taken
}

TEST_CASE("caching pool: out of memory flushes the cache and retries once", "[caching_pool]") {
  FakeRaw raw{4096};
  CachingPool pool(raw.raw());
  void* big = pool.allocate(4096);  // the whole budget
  pool.release(big, 4096);          // cached, too large to serve 1024
  void* p = pool.allocate(1024);
  REQUIRE(p);
  CHECK(raw.frees == 1);   // the cached 4096 went back
  CHECK(raw.allocs == 2);  // the failed first try is not counted by the fake
  CHECK(pool.cached_bytes() == 0);
  CHECK(pool.in_use_bytes() == 1024);
}

TEST_CASE("caching pool: out of memory after the flush returns null and keeps the books", "[caching_pool]") {
  FakeRaw raw{2048};
  CachingPool pool(raw.raw());
  void* held = pool.allocate(1536);
  void* spare = pool.allocate(512);
  pool.release(spare, 512);
  // 1024 more cannot fit even with the cached 512 handed back.
  CHECK(pool.allocate(1024) == nullptr);
  CHECK(raw.frees == 1);
  CHECK(pool.cached_bytes() == 0);
  CHECK(pool.in_use_bytes() == 1536);
  // Nothing cached: no flush, one failed try, null again; the held block is untouched.
  CHECK(pool.allocate(1024) == nullptr);
  CHECK(raw.frees == 1);
  pool.release(held, 1536);
  CHECK(pool.cached_bytes() == 1536);
}

TEST_CASE("caching pool: releasing an unknown pointer, twice, or too many bytes throws", "[caching_pool]") {
  FakeRaw raw{1 << 20};
  CachingPool pool(raw.raw());
  int on_stack = 0;
  CHECK_THROWS_AS(pool.release(&on_stack, 4), Error);
  void* p = pool.allocate(100);
  CHECK_THROWS_AS(pool.release(p, 600), Error);  // 600 bytes cannot have come from a 512 block
  pool.release(p, 100);
  CHECK_THROWS_AS(pool.release(p, 100), Error);
}

TEST_CASE("caching pool: flush hands back cached blocks and leaves blocks in use", "[caching_pool]") {
  FakeRaw raw{1 << 20};
  CachingPool pool(raw.raw());
  void* a = pool.allocate(512);
  void* b = pool.allocate(8192);
  pool.release(b, 8192);
  pool.flush();
  CHECK(raw.frees == 1);
  CHECK(raw.used == 512);
  CHECK(pool.cached_bytes() == 0);
  CHECK(pool.in_use_bytes() == 512);
  pool.release(a, 512);
}


TEST_CASE("caching pool: unbounded (the GPU's) keeps every released block", "[caching_pool]") {
  FakeRaw raw{1 << 20};
  CachingPool pool(raw.raw());
  void* a = pool.allocate(4096);
  pool.release(a, 4096);
  void* b = pool.allocate(1024);  // 4096 is more than twice 1024: a new block
  pool.release(b, 1024);
  CHECK(pool.cached_bytes() == 4096 + 1024);  // more than the 4096 ever in use at once
  CHECK(raw.frees == 0);
}

TEST_CASE("caching pool: bounded (the CPU's) holds at most twice its peak, oldest blocks out first", "[caching_pool]") {
  FakeRaw raw{1 << 20};
  CachingPool pool(raw.raw(), /*bounded=*/true);
  void* a = pool.allocate(8192);  // the peak in use: 8192, so the pool may hold 16384
  pool.release(a, 8192);
  // Requests the cached 8192 is too big for (more than twice each) take new blocks; released, they
  // stay cached while the total fits: 8192 + 512 + 1024 + 1536 + 2048 + 2560 = 15872.
  for (size_t n : {512, 1024, 1536, 2048, 2560}) pool.release(pool.allocate(n), n);
  CHECK(pool.cached_bytes() == 15872);
  CHECK(raw.frees == 0);
  CHECK(pool.raw_allocations() == 6);
  // 3072 more would make 18944 > 16384: the block cached longest ago (a's) goes back first.
  void* g = pool.allocate(3072);
  CHECK(raw.frees == 1);
  CHECK(raw.freed == std::vector<void*>{a});  // not live.count(a): g may reuse a's address
  CHECK(pool.cached_bytes() == 15872 - 8192);
  pool.release(g, 3072);
  CHECK(pool.cached_bytes() == 15872 - 8192 + 3072);
  CHECK(raw.used == size_t(pool.cached_bytes()));
}

TEST_CASE("caching pool: a bounded pool keeps a repeating step's blocks", "[caching_pool]") {
  FakeRaw raw{1 << 20};
  CachingPool pool(raw.raw(), /*bounded=*/true);
  // three "training steps" with the same tensors: only the first asks for raw memory
  for (int step = 0; step < 3; ++step) {
    void* x = pool.allocate(4096);
    void* y = pool.allocate(2048);
    pool.release(x, 4096);
    void* z = pool.allocate(1024);  // 4096 is more than twice 1024: a block of its own
    pool.release(y, 2048);
    pool.release(z, 1024);
  }
  CHECK(pool.raw_allocations() == 3);
  CHECK(raw.frees == 0);
  CHECK(pool.cached_bytes() == 4096 + 2048 + 1024);
}
