// The linear layer's forward pass with its bias and activation fused into the GEMM's store.
#include "epilogue.h"
#include "gemm.h"

namespace convnet {

// x (M,K), w (N,K), b (N) or null -> y (M,N) = act(x w^T + b)
template <typename T>
void linear_forward_act(index_t M, index_t N, index_t K, const T* x, const T* w, const T* b,
                        T* y, int act, T p1, T p2, int nthreads) {
  FlushToZero ftz;
  Epilogue<T> ep;
  ep.bias = b;
  ep.bias_per_col = true;
  ep.act = act;
  ep.p1 = p1;
  ep.p2 = p2;
  gemm_auto<T>(M, K, T(1), DenseA<T>{x, K, false}, DenseB<T>{w, K, true, N}, T(0), y, N,
               nthreads, ep);
}

template void linear_forward_act<float>(index_t, index_t, index_t, const float*, const float*,
                                        const float*, float*, int, float, float, int);
template void linear_forward_act<double>(index_t, index_t, index_t, const double*,
                                         const double*, const double*, double*, int, double,
                                         double, int);

}  // namespace convnet
