// What a harness does when an invariant does not hold: say which, then abort, so libFuzzer keeps the
// input as a crash (crash-<sha1> in the run's artifact directory).
#pragma once
#include <cstdio>
#include <cstdlib>

namespace natlb::fuzz {

// NATLB_FUZZ_MUTANT=1 in the environment turns a harness into its "mutant": it damages the output of
// the function under test on purpose, to show that its checks catch a broken function (test/fuzz.test.ts).
inline const bool kMutant = std::getenv("NATLB_FUZZ_MUTANT") != nullptr;

// Aborts with `what` (a statement of the invariant) when `holds` is false.
inline void require(bool holds, const char* what) {
  if (holds) return;
  std::fprintf(stderr, "natlb fuzz: invariant violated: %s\n", what);
  std::abort();
}

}  // namespace natlb::fuzz
