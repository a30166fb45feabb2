// Training checkpoints (nn/checkpoint.h, --checkpoint / --resume): every part of the state round
// trips, a checkpoint of another run is refused naming the field, and a run killed by SIGKILL after
// a checkpoint and resumed gives the uninterrupted run's results bit for bit (zeroshot on a table:
// its JSON results; train --model acr-dsvdd, ntl and dsvdd: the model file).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include <json.hpp>

#include "nn/checkpoint.h"
#include "nn/safetensors.h"
#include "tensor/random.h"
#include "tests/cli_run.h"
#include "tests/helpers.h"
#include "tests/tiny_fmnist.h"

extern char** environ;

using namespace normad;
namespace fs = std::filesystem;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// Starts normad with `args` (split on spaces), output to `log`; waits until `file` exists (and
// `ready` says yes), then kills it with SIGKILL. Returns false when the run ended first.
bool run_and_kill_after(const std::string& args, const std::string& file, const std::string& log,
                        const std::function<bool()>& ready = {}) {
  std::vector<std::string> words{NORMAD_BIN};
  std::istringstream in(args);
  for (std::string w; in >> w;) words.push_back(w);
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ) == 0);
  posix_spawn_file_actions_destroy(&actions);
  int status = 0;
  while (!fs::exists(file) || (ready && !ready())) {
    if (waitpid(pid, &status, WNOHANG) == pid) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

// The results of a zeroshot --json file without what may differ between runs (times, memory).
nlohmann::json results(const std::string& path) {
  nlohmann::json js = nlohmann::json::parse(slurp(path));
  js.erase("memory");
  for (auto& fold : js["folds"]) fold.erase("secs_per_iter");
  return js;
}

}  // namespace

TEST_CASE("checkpoint: generator, Adam and model state round trip, another run is refused", "[checkpoint]") {
  Generator g(7);
  g.normal1();
  Generator h(0);
  h.set_state(g.state());
  for (int i = 0; i < 5; ++i) CHECK(g.uniform01() == h.uniform01());
  CHECK_THROWS_AS(h.set_state("not a state"), Error);

  // StepLR resumed at epoch 5 (step 2, gamma 0.5) has the rate of five step() calls: base * 0.5^2.
  Var w(Tensor::ones({1}), true);
  nn::Adam opt_a({w}, 0.8f), opt_b({w}, 0.8f);
  nn::StepLR stepped(opt_a, 2, 0.5f), resumed(opt_b, 2, 0.5f);
  for (int i = 0; i < 5; ++i) stepped.step();
  resumed.set_last_epoch(5);
  CHECK(opt_b.lr == opt_a.lr);
  CHECK(opt_b.lr == 0.2f);
  CHECK(resumed.last_epoch() == 5);

  // Two identical parameters and optimisers: three steps on one, its state copied through a file
  // into the other, then one more step each must agree bit for bit.
  auto make = [] { return Var(Tensor::from({3}, {0.5f, -1.f, 2.f}), true); };
  Var p = make(), q = make();
  nn::Adam a({p}, 1e-2f), b({q}, 1e-2f);
  auto step = [](nn::Adam& opt, Var& v) {
    opt.zero_grad();
    Var loss = sum(mul(v, v));
    loss.backward();
    opt.step();
  };
  for (int i = 0; i < 3; ++i) step(a, p);
  Generator rng_a(3);
  rng_a.uniform01();
  const std::string path = (fs::temp_directory_path() / "normad_ckpt_unit.st").string();
  const std::map<std::string, std::string> run{{"seed", "1"}, {"data", "abc"}};
  nn::save_checkpoint(path, {{{"p", p.data()}}, &a, {{"r", &rng_a}}}, 3, run, {{"note", "x"}});
  Generator rng_b(0);
  std::map<std::string, std::string> extra;
  CHECK(nn::load_checkpoint(path, {{{"p", q.data()}}, &b, {{"r", &rng_b}}}, run, &extra) == 3);
  CHECK(extra == std::map<std::string, std::string>{{"note", "x"}});
  CHECK(rng_a.uniform01() == rng_b.uniform01());
  step(a, p);
  step(b, q);
  for (int i = 0; i < 3; ++i) CHECK(p.data().data()[i] == q.data().data()[i]);
  // Another run: the differing field is named; a plain safetensors file is no checkpoint.
  CHECK_THROWS_WITH(nn::load_checkpoint(path, {{{"p", q.data()}}, &b, {{"r", &rng_b}}}, {{"seed", "2"}, {"data", "abc"}}),
                    Catch::Contains(path) && Catch::Contains("seed is '1' there, '2' now"));
  nn::save_safetensors(path, {{"w", Tensor::ones({2})}});
  CHECK_THROWS_WITH(nn::load_checkpoint(path, {{{"p", q.data()}}, &b, {}}, run), Catch::Contains("not a normad checkpoint"));
  fs::remove(path);
}

TEST_CASE("checkpoint: a run killed after a checkpoint and resumed equals the uninterrupted run", "[checkpoint][cli]") {
  const fs::path dir = fs::temp_directory_path() / ("normad_ckpt_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string data = (dir / "cls.csv").string();
  {
    Generator g(4);
    std::ofstream f(data);
    f << "a,b,c,d,cls\n";
    for (int k = 0; k < 6; ++k)
      for (int i = 0; i < 90; ++i)
        f << g.normal1() + 0.8f * k << "," << g.normal1() - 0.3f * k << "," << g.normal1() << "," << g.normal1() * (1 + k % 2)
          << ",c" << k << "\n";
  }
  const std::string d = dir.string() + "/";
  SECTION("zeroshot on a table: the JSON results") {
    const std::string args = "zeroshot --csv " + data + " --label cls --train-classes c0,c1,c2 --test-classes c3,c4,c5 " +
                             "--batch-normals 40 --iters 300 --eval-every 10 --threads 1";
    test::Run r = test::run(args + " --json " + d + "full.json");
    INFO(r.out);
    REQUIRE(r.rc == 0);
    REQUIRE(run_and_kill_after(args + " --checkpoint " + d + "ck.st --checkpoint-every 20 --json " + d + "part.json",
                               d + "ck.st", d + "killed.log"));
    CHECK_FALSE(fs::exists(d + "part.json"));
    const int64_t at = nn::load_safetensors(d + "ck.st").meta_int("ckpt.step", 1, 300);
    INFO("killed after the checkpoint of iteration " << at);
    CHECK(at < 300);
    r = test::run(args + " --resume " + d + "ck.st --checkpoint " + d + "ck.st --checkpoint-every 20 --json " + d +
                  "resumed.json");
    INFO(r.out);
    REQUIRE(r.rc == 0);
    // It went on from the checkpoint (the same seed from scratch would give the same results too).
    CHECK_THAT(r.out, Catch::Contains("resumed from " + d + "ck.st after iteration " + std::to_string(at) + " of 300"));
    const nlohmann::json full = results(d + "full.json");
    CHECK(full["folds"][0]["curve"].size() == 30);  // the points before the kill come from the checkpoint
    CHECK(results(d + "resumed.json") == full);
    // The same checkpoint under other options is refused, naming the option's field.
    r = test::run(args + " --seed 5 --resume " + d + "ck.st --json " + d + "other.json");
    CHECK(r.rc == 2);
    CHECK_THAT(r.out, Catch::Contains("checkpoint of another run: seed is '0' there, '5' now"));
  }
  SECTION("train --model acr-dsvdd: the model file") {
    const std::string args = "train --model acr-dsvdd --data " + data + " --label cls --iters 300 --batch 40 --threads 1";
    test::Run r = test::run(args + " --out " + d + "full.st");
    INFO(r.out);
    REQUIRE(r.rc == 0);
    REQUIRE(run_and_kill_after(args + " --checkpoint " + d + "ck2.st --checkpoint-every 20 --out " + d + "part.st",
                               d + "ck2.st", d + "killed2.log"));
    CHECK_FALSE(fs::exists(d + "part.st"));
    const int64_t at = nn::load_safetensors(d + "ck2.st").meta_int("ckpt.step", 1, 300);
    r = test::run(args + " --resume " + d + "ck2.st --out " + d + "resumed.st");
    INFO(r.out);
    REQUIRE(r.rc == 0);
    CHECK_THAT(r.out, Catch::Contains("after iteration " + std::to_string(at) + " of 300"));
    CHECK(slurp(d + "resumed.st") == slurp(d + "full.st"));
  }
  SECTION("train --model ntl and dsvdd: the model file, epoch checkpoints with model selection") {
    for (const std::string model : {"ntl", "dsvdd"}) {
      INFO(model);
      const std::string args = "train --model " + model + " --data " + data +
                               " --label cls --normal c0 --epochs 400 --batch 16 --threads 1" +
                               (model == "ntl" ? " --transformations 3 --patience 50" : " --widths 8,4");
      test::Run r = test::run(args + " --out " + d + model + "_full.st");
      INFO(r.out);
      REQUIRE(r.rc == 0);
      const std::string ck = d + model + "_ck.st";
      // every 7: the first checkpoint falls after epoch 6, where model selection (a best copy) begins
      REQUIRE(run_and_kill_after(args + " --checkpoint " + ck + " --checkpoint-every 7 --out " + d + model + "_part.st", ck,
                                 d + model + "_killed.log"));
      CHECK_FALSE(fs::exists(d + model + "_part.st"));
      const int64_t at = nn::load_safetensors(ck).meta_int("ckpt.step", 1, 400);
      r = test::run(args + " --resume " + ck + " --out " + d + model + "_resumed.st");
      INFO(r.out);
      REQUIRE(r.rc == 0);
      CHECK_THAT(r.out, Catch::Contains("resumed from " + ck + " after epoch " + std::to_string(at) + " of 400"));
      CHECK(slurp(d + model + "_resumed.st") == slurp(d + model + "_full.st"));
    }
  }
  fs::remove_all(dir);
}

TEST_CASE("checkpoint: oneclass resumes in either phase to the uninterrupted results", "[checkpoint][cli]") {
  const fs::path dir = fs::temp_directory_path() / ("normad_ckpt_oc_" + std::to_string(getpid()));
  fs::remove_all(dir);
  const std::string d = dir.string() + "/", data = test::write_tiny_fmnist(dir / "fmnist", 20, 6);
  const std::string common = "oneclass --data-dir " + data + " --ae-epochs 40 --epochs 40 --threads 1";
  const std::string args = common + " --classes 3";
  test::Run r = test::run(args + " --json " + d + "full.json");
  INFO(r.out);
  REQUIRE(r.rc == 0);
  // AUROC and the last epoch's loss (the tiny classes separate perfectly: the loss tells runs apart)
  auto result = [](const std::string& path) {
    const auto c = nlohmann::json::parse(slurp(path))["classes"][0];
    return std::pair<double, double>{c["auroc"].get<double>(), c["svdd_final_loss"].get<double>()};
  };
  for (const std::string phase : {"autoencoder pretraining", "Deep SVDD"}) {
    INFO(phase);
    const std::string ck = d + (phase == "Deep SVDD" ? "svdd" : "ae") + ".st";
    auto in_phase = [&] {
      try {
        return nn::load_safetensors(ck).meta("ckpt.run.phase") == phase;
      } catch (const Error&) {
        return false;  // a file being renamed into place
      }
    };
    REQUIRE(run_and_kill_after(args + " --checkpoint " + ck + " --checkpoint-every 7 --json " + d + "part.json", ck,
                               d + "killed.log", in_phase));
    CHECK_FALSE(fs::exists(d + "part.json"));
    r = test::run(args + " --resume " + ck + " --checkpoint " + ck + " --checkpoint-every 7 --json " + d + "resumed.json");
    INFO(r.out);
    REQUIRE(r.rc == 0);
    CHECK_THAT(r.out, Catch::Contains("resumed from " + ck + " in " + phase + " after epoch"));
    CHECK(result(d + "resumed.json") == result(d + "full.json"));
  }
  r = test::run(common + " --classes 3,4 --checkpoint " + d + "x.st --checkpoint-every 2");
  CHECK(r.rc == 2);
  CHECK_THAT(r.out, Catch::Contains("one class per run"));
  fs::remove_all(dir);
}

TEST_CASE("checkpoint: option errors name the option", "[checkpoint][cli]") {
  const std::string d = fs::temp_directory_path().string() + "/";
  struct Case {
    std::string args, message;
  };
  for (const Case& c : std::vector<Case>{
           {"zeroshot --iters 5 --checkpoint " + d + "c.st", "--checkpoint " + d + "c.st: needs --checkpoint-every N"},
           {"zeroshot --iters 5 --checkpoint-every 5", "--checkpoint-every: needs --checkpoint FILE"},
           {"zeroshot --iters 5 --fold both --checkpoint " + d + "c.st --checkpoint-every 2", "one fold per run"},
           {"train --model ntl --data x.csv --out " + d + "m.st --checkpoint-every -1", "--checkpoint-every: must be >= 0"},
       }) {
    const test::Run r = test::run(c.args);
    INFO(c.args << "\n" << r.out);
    CHECK(r.rc == 2);
    CHECK_THAT(r.out, Catch::Contains(c.message));
  }
}
