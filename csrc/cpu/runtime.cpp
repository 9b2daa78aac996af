// Threading and floating-point environment shared by all CPU kernels.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>

#include "convnet/common.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif
#if defined(__linux__)
#include <sched.h>
#include <unistd.h>
#endif

namespace convnet {

namespace {
int default_threads() {
#ifdef _OPENMP
  return omp_get_num_procs();
#else
  return 1;
#endif
}
int g_num_threads = 0;
}  // namespace

int get_num_threads() {
  if (g_num_threads <= 0) g_num_threads = default_threads();
  return g_num_threads;
}

void set_num_threads(int n) {
  g_num_threads = n > 0 ? n : default_threads();
#ifdef _OPENMP
  omp_set_num_threads(g_num_threads);
#endif
}

// ---------------------------------------------------------------- available threads
// When another process keeps a core busy, a kernel that splits its work over every core
// waits at the end of each parallel region for the thread that shares that core, and
// CFS lets it run only every other time slice: a training step then runs about 3x slower
// instead of at the one free core's speed. So the kernels take at most the cores that
// the other processes leave free, measured from /proc/stat (the machine's busy time)
// minus this process's own CPU time, over windows of kProbeNs, rounded to whole cores.
// Only where /proc/stat shows exactly the CPUs this process may run on (not in a
// container that sees the host's); CONVNET_ADAPTIVE_THREADS=0 turns it off.
namespace {
constexpr long long kProbeNs = 100000000;  // 0.1 s
std::atomic<int> g_free_cores{0};          // 0: not measured (yet, or not here)
std::atomic<long long> g_next_probe{0};
std::mutex g_probe_mutex;
double g_prev_busy = -1, g_prev_own = 0, g_prev_wall = 0;

long long now_ns(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

#if defined(__linux__)
// Seconds of CPU time all CPUs spent busy (user, nice, system, irq, softirq, steal), and
// how many CPUs /proc/stat lists; false when it cannot be read.
bool machine_busy_seconds(double* busy, int* cpus) {
  std::FILE* f = std::fopen("/proc/stat", "r");
  if (!f) return false;
  char line[512];
  unsigned long long v[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int fields = 0, n = 0;
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, "cpu ", 4) == 0) {
      fields = std::sscanf(line + 4, "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
                           &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
    } else if (std::strncmp(line, "cpu", 3) == 0) {
      ++n;
    } else if (n > 0) {
      break;
    }
  }
  std::fclose(f);
  const long hz = sysconf(_SC_CLK_TCK);
  if (fields < 4 || n < 1 || hz <= 0) return false;
  *busy = double(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / double(hz);
  *cpus = n;
  return true;
}

bool adaptive_enabled() {  // read on every call: a test or a benchmark may switch it
  const char* env = std::getenv("CONVNET_ADAPTIVE_THREADS");
  return !(env && std::strcmp(env, "0") == 0);
}

void probe_free_cores() {
  std::unique_lock<std::mutex> lock(g_probe_mutex, std::try_to_lock);
  if (!lock.owns_lock()) return;  // another thread is measuring right now
  const long long wall_ns = now_ns(CLOCK_MONOTONIC);
  if (wall_ns < g_next_probe.load(std::memory_order_relaxed)) return;
  g_next_probe.store(wall_ns + kProbeNs, std::memory_order_relaxed);
  double busy = 0;
  int cpus = 0;
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (!machine_busy_seconds(&busy, &cpus) || sched_getaffinity(0, sizeof mask, &mask) != 0 ||
      CPU_COUNT(&mask) != cpus) {
    g_free_cores.store(0, std::memory_order_relaxed);
    g_next_probe.store(wall_ns + 100 * kProbeNs, std::memory_order_relaxed);
    return;
  }
  const double own = double(now_ns(CLOCK_PROCESS_CPUTIME_ID)) * 1e-9;
  const double wall = double(wall_ns) * 1e-9;
  if (g_prev_busy >= 0 && wall > g_prev_wall) {
    const double others = ((busy - g_prev_busy) - (own - g_prev_own)) / (wall - g_prev_wall);
    const int free_cores = static_cast<int>(double(cpus) - others + 0.5);
    g_free_cores.store(std::max(1, std::min(free_cores, cpus)), std::memory_order_relaxed);
  }
  g_prev_busy = busy;
  g_prev_own = own;
  g_prev_wall = wall;
}
#endif
}  // namespace

int available_threads() {
  const int nt = get_num_threads();
#if defined(__linux__)
  if (nt <= 1 || !adaptive_enabled()) return nt;
  if (now_ns(CLOCK_MONOTONIC) >= g_next_probe.load(std::memory_order_relaxed)) probe_free_cores();
  const int free_cores = g_free_cores.load(std::memory_order_relaxed);
  return free_cores > 0 && free_cores < nt ? free_cores : nt;
#else
  return nt;
#endif
}

bool has_openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

#if defined(__x86_64__) || defined(_M_X64)
FlushToZero::FlushToZero() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040); }  // FTZ|DAZ
FlushToZero::~FlushToZero() { _mm_setcsr(saved_); }
#else
FlushToZero::FlushToZero() {}
FlushToZero::~FlushToZero() {}
#endif

const char* simd_level() {
#if defined(__AVX512F__)
  return "AVX-512";
#elif defined(__AVX2__) && defined(__FMA__)
  return "AVX2+FMA";
#elif defined(__AVX__)
  return "AVX";
#elif defined(__SSE2__)
  return "SSE2";
#elif defined(__ARM_NEON)
  return "NEON";
#else
  return "scalar";
#endif
}

}  // namespace convnet
