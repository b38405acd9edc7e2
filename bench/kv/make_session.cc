// make_session: writes a session of N tokens with random K/V for MODEL, so that decode
// speed and memory at long contexts can be measured without running the prefill
// (random K/V are as good as real ones for memory and speed; the weights are random
// too in the benchmark models).
//
//   make_session MODEL NAME N [--kv-dir DIR]   → $SPOOL_HOME/sessions/NAME.session
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "kv/disk_kv.h"
#include "kv/session.h"
#include "runtime/engine.h"
#include "runtime/planner.h"

using namespace spool;

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: make_session MODEL NAME N_TOKENS\n");
    return 2;
  }
  const std::string model = argv[1], name = argv[2];
  const int64_t n = std::atoll(argv[3]);
  runtime::EngineOptions eo;
  eo.load_tokenizer = false;
  eo.ctx = n + 1;
  auto engine = runtime::Engine::Open(model, eo);
  if (!engine.ok()) {
    std::fprintf(stderr, "make_session: %s\n", engine.status().message().c_str());
    return 1;
  }
  auto& e = **engine;
  auto fp = e.ModelFingerprint();
  if (!fp.ok()) return 1;
  const auto& c = e.config();
  // Sliding-window layers (Gemma) release what falls out of their window, as in a run,
  // so the session stores only their live rows.
  kv::KvLayout layout{c.n_layer, c.n_head_kv, c.head_dim, eo.kv_page_tokens, eo.kv_dtype, runtime::SlidingWindows(c)};
  kv::DiskKvOptions o;
  o.window_tokens = 2048;
  o.max_tokens = n + 1;
  o.dir = kv::SpoolHome() + "/kv";
  kv::DiskKv cache(layout, o);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  const int64_t chunk = 512, row = layout.row_elems();
  std::vector<float> k(chunk * row), v(chunk * row);
  for (auto& x : k) x = nd(rng);
  for (auto& x : v) x = nd(rng);
  for (int64_t pos = 0; pos < n; pos += chunk) {
    const int64_t m = std::min(chunk, n - pos);
    for (int64_t l = 0; l < c.n_layer; ++l)
      if (Status st = cache.Write(l, pos, m, k.data(), v.data()); !st.ok()) {
        std::fprintf(stderr, "make_session: %s\n", st.message().c_str());
        return 1;
      }
    if (!cache.Commit(m).ok()) return 1;
  }
  kv::SessionInfo info;
  info.model = model;
  info.fingerprint = *fp;
  info.kv_dtype = layout.dtype;
  info.n_layer = layout.n_layer;
  info.n_head_kv = layout.n_head_kv;
  info.head_dim = layout.head_dim;
  info.record_tokens = layout.page_tokens;
  info.tokens.resize(n);
  for (auto& t : info.tokens) t = static_cast<int32_t>(rng() % c.n_vocab);
  info.pending = {static_cast<int32_t>(rng() % c.n_vocab)};
  info.settings = {{"synthetic", true}};
  const std::string path = kv::SessionPath(kv::DefaultSessionsDir(), name);
  if (Status st = kv::SaveSession(path, info, cache); !st.ok()) {
    std::fprintf(stderr, "make_session: %s\n", st.message().c_str());
    return 1;
  }
  std::printf("%s: %lld tokens\n", path.c_str(), static_cast<long long>(n));
  return 0;
}
