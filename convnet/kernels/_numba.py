"""Numba JIT backend: hand-written CPU kernels, the fallback when ``convnet._C`` is missing.

Every public function here has the backend-level signature shared with the C++ backend and
with ``convnet/kernels/reference.py``: arrays are C-contiguous NumPy arrays of one float dtype
(float32 or float64), already validated by the caller; outputs are preallocated, may hold
garbage on entry and are fully overwritten; the functions return None. Layout is NCHW.
Padding is given as the top/left pad only; the output size comes from the output's shape,
which is how asymmetric ("SAME") padding is expressed: anything outside the input is zero
(or -inf for max pooling).

Design:

* GEMM: a cache-blocked loop nest (KC x NC panels of B packed, scaled by alpha, into a
  contiguous buffer; parallel over (column panel, row block) tasks). The inner block
  updates 4 rows of C with 8 rows of B at a time so each C element is loaded and stored
  once per 8 multiply-adds; LLVM vectorises the contiguous inner column loop (AVX-512
  where present). No BLAS anywhere.
* conv2d: im2col of a tile of ~512 flat output positions into a per-thread buffer, then
  the same block kernel. Work is split into (image, tile) tasks handed out in contiguous
  chunks, one chunk per thread, so every buffer and every partial sum is private to a
  chunk (no races, no allocation inside ``prange``). The data gradient is W^T @ dy then
  col2im, whole images per thread (or, for fewer images than threads, a parallel GEMM
  then col2im parallel over input channels); the weight gradient sums dy @ im2col^T into
  one partial per chunk, reduced at the end. 1x1/stride-1/unpadded convolutions skip
  im2col.
* Pooling runs in parallel over the N*C planes, one output row at a time and one window
  tap at a time across the row, which is branch-free and vectorises.
* Batch norm: per-channel sums in float64 (parallel over channels; across channels when
  L == 1), then one fused elementwise pass; the O(C) per-channel coefficients are plain
  float64 NumPy in the wrappers.

Kernels are compiled lazily, one specialisation per dtype, and cached on disk
(``cache=True``); the wrappers turn every scalar into a Python int/float/bool so that no
other specialisations appear.
"""

import math

import numba
import numpy as np
from numba import prange

from .spec import NAMES

__all__ = list(NAMES)  # the manifest's kernels, each defined below

# Parallel kernels and the serial helpers they call from inside prange bodies (a helper must
# not open a nested parallel region).
_parallel = numba.njit(parallel=True, cache=True, fastmath=False)
_serial = numba.njit(cache=True, fastmath=False)

# Blocking: a KC x NC panel of B (256 x 512 x 4 B = 512 KiB in fp32) stays in one core's L2
# while MC rows of A stream past it; a 4-row strip of C (4 x 2 KiB) stays in L1.
_MC = 64
_KC = 256
_NC = 512
# Output positions per convolution tile: a KC slice of the im2col tile (256 x ~512) stays
# in L2, and long rows amortise the block kernel's per-step overhead.
_TILE = 512


# --------------------------------------------------------------------------------------
# GEMM core
# --------------------------------------------------------------------------------------


@_serial
def _block_madd(a, ak0, b, bk0, c, i0, i1, kc, bj0, cj0, width):
    """c[i, cj0:cj0+width] += sum_t a[i, ak0+t] * b[bk0+t, bj0:bj0+width], i in [i0, i1).

    a (M, Ka), b (Kb, Nb), c (M, Nc), t in [0, kc). Serial; the caller owns rows i0:i1 of
    c's column range.
    """
    bj1 = bj0 + width
    cj1 = cj0 + width
    i = i0
    while i + 4 <= i1:
        # Row views with a zero start keep the inner index provably non-negative, which
        # is what lets LLVM vectorise (no wraparound select on the index).
        c0 = c[i, cj0:cj1]
        c1 = c[i + 1, cj0:cj1]
        c2 = c[i + 2, cj0:cj1]
        c3 = c[i + 3, cj0:cj1]
        a0 = a[i, ak0:ak0 + kc]
        a1 = a[i + 1, ak0:ak0 + kc]
        a2 = a[i + 2, ak0:ak0 + kc]
        a3 = a[i + 3, ak0:ak0 + kc]
        t = 0
        while t + 8 <= kc:
            b0 = b[bk0 + t, bj0:bj1]
            b1 = b[bk0 + t + 1, bj0:bj1]
            b2 = b[bk0 + t + 2, bj0:bj1]
            b3 = b[bk0 + t + 3, bj0:bj1]
            b4 = b[bk0 + t + 4, bj0:bj1]
            b5 = b[bk0 + t + 5, bj0:bj1]
            b6 = b[bk0 + t + 6, bj0:bj1]
            b7 = b[bk0 + t + 7, bj0:bj1]
            x00, x01, x02, x03 = a0[t], a0[t + 1], a0[t + 2], a0[t + 3]
            x04, x05, x06, x07 = a0[t + 4], a0[t + 5], a0[t + 6], a0[t + 7]
            x10, x11, x12, x13 = a1[t], a1[t + 1], a1[t + 2], a1[t + 3]
            x14, x15, x16, x17 = a1[t + 4], a1[t + 5], a1[t + 6], a1[t + 7]
            x20, x21, x22, x23 = a2[t], a2[t + 1], a2[t + 2], a2[t + 3]
            x24, x25, x26, x27 = a2[t + 4], a2[t + 5], a2[t + 6], a2[t + 7]
            x30, x31, x32, x33 = a3[t], a3[t + 1], a3[t + 2], a3[t + 3]
            x34, x35, x36, x37 = a3[t + 4], a3[t + 5], a3[t + 6], a3[t + 7]
            for j in range(width):
                v0 = b0[j]
                v1 = b1[j]
                v2 = b2[j]
                v3 = b3[j]
                v4 = b4[j]
                v5 = b5[j]
                v6 = b6[j]
                v7 = b7[j]
                c0[j] = (c0[j] + x00 * v0 + x01 * v1 + x02 * v2 + x03 * v3
                         + x04 * v4 + x05 * v5 + x06 * v6 + x07 * v7)
                c1[j] = (c1[j] + x10 * v0 + x11 * v1 + x12 * v2 + x13 * v3
                         + x14 * v4 + x15 * v5 + x16 * v6 + x17 * v7)
                c2[j] = (c2[j] + x20 * v0 + x21 * v1 + x22 * v2 + x23 * v3
                         + x24 * v4 + x25 * v5 + x26 * v6 + x27 * v7)
                c3[j] = (c3[j] + x30 * v0 + x31 * v1 + x32 * v2 + x33 * v3
                         + x34 * v4 + x35 * v5 + x36 * v6 + x37 * v7)
            t += 8
        while t < kc:
            b0 = b[bk0 + t, bj0:bj1]
            x00 = a0[t]
            x10 = a1[t]
            x20 = a2[t]
            x30 = a3[t]
            for j in range(width):
                v0 = b0[j]
                c0[j] += x00 * v0
                c1[j] += x10 * v0
                c2[j] += x20 * v0
                c3[j] += x30 * v0
            t += 1
        i += 4
    while i < i1:
        c0 = c[i, cj0:cj1]
        a0 = a[i, ak0:ak0 + kc]
        t = 0
        while t + 8 <= kc:
            b0 = b[bk0 + t, bj0:bj1]
            b1 = b[bk0 + t + 1, bj0:bj1]
            b2 = b[bk0 + t + 2, bj0:bj1]
            b3 = b[bk0 + t + 3, bj0:bj1]
            b4 = b[bk0 + t + 4, bj0:bj1]
            b5 = b[bk0 + t + 5, bj0:bj1]
            b6 = b[bk0 + t + 6, bj0:bj1]
            b7 = b[bk0 + t + 7, bj0:bj1]
            x00, x01, x02, x03 = a0[t], a0[t + 1], a0[t + 2], a0[t + 3]
            x04, x05, x06, x07 = a0[t + 4], a0[t + 5], a0[t + 6], a0[t + 7]
            for j in range(width):
                c0[j] = (c0[j] + x00 * b0[j] + x01 * b1[j] + x02 * b2[j] + x03 * b3[j]
                         + x04 * b4[j] + x05 * b5[j] + x06 * b6[j] + x07 * b7[j])
            t += 8
        while t < kc:
            b0 = b[bk0 + t, bj0:bj1]
            x00 = a0[t]
            for j in range(width):
                c0[j] += x00 * b0[j]
            t += 1
        i += 1


@_serial
def _gemm_serial(a, ak0, b, bk0, c, i0, i1, kdim, bj0, cj0, width):
    """Serial, cache-blocked c[i0:i1, cj0:cj0+width] += a[i0:i1, ak0:ak0+kdim] @ b-block.

    The b-block is b[bk0:bk0+kdim, bj0:bj0+width]; a (M, Ka), b (Kb, Nb), c (M, Nc).
    """
    # Even column blocks (multiples of 16): 576 columns run as 2 x 288, not 512 + 64,
    # since a short block wastes most of the per-step overhead of the block kernel.
    nbj = (width + _NC - 1) // _NC
    ncb = ((width + nbj - 1) // nbj + 15) // 16 * 16
    nbk = (kdim + _KC - 1) // _KC
    kcb = ((kdim + nbk - 1) // nbk + 7) // 8 * 8
    for kk0 in range(0, kdim, kcb):
        kc = min(kcb, kdim - kk0)
        for jj0 in range(0, width, ncb):
            _block_madd(a, ak0 + kk0, b, bk0 + kk0, c, i0, i1, kc, bj0 + jj0, cj0 + jj0,
                        min(ncb, width - jj0))


@_serial
def _transpose_into(src, sc0, rows, cols, dst):
    """dst[j, i] = src[i, sc0 + j] for i < rows, j < cols; src (R, *), dst (>=cols, >=rows)."""
    # Eight source rows per sweep: contiguous reads from each, one 8-element run written
    # per destination row; unsigned indices skip the negative-index fix-up (all are >= 0).
    i = 0
    while i + 8 <= rows:
        s0 = src[i, sc0:sc0 + cols]
        s1 = src[i + 1, sc0:sc0 + cols]
        s2 = src[i + 2, sc0:sc0 + cols]
        s3 = src[i + 3, sc0:sc0 + cols]
        s4 = src[i + 4, sc0:sc0 + cols]
        s5 = src[i + 5, sc0:sc0 + cols]
        s6 = src[i + 6, sc0:sc0 + cols]
        s7 = src[i + 7, sc0:sc0 + cols]
        for j in range(cols):
            drow = dst[j]
            drow[np.uint64(i)] = s0[j]
            drow[np.uint64(i + 1)] = s1[j]
            drow[np.uint64(i + 2)] = s2[j]
            drow[np.uint64(i + 3)] = s3[j]
            drow[np.uint64(i + 4)] = s4[j]
            drow[np.uint64(i + 5)] = s5[j]
            drow[np.uint64(i + 6)] = s6[j]
            drow[np.uint64(i + 7)] = s7[j]
        i += 8
    while i < rows:
        s0 = src[i, sc0:sc0 + cols]
        for j in range(cols):
            dst[j, np.uint64(i)] = s0[j]
        i += 1


@_parallel
def _transpose_kernel(src, dst):
    """dst = src.T; src (R, C), dst (C, R)."""
    rows, cols = src.shape
    nb = (cols + 63) // 64
    for jb in prange(nb):
        j0 = jb * 64
        j1 = min(cols, j0 + 64)
        _transpose_into(src, j0, rows, j1 - j0, dst[j0:j1])


@_parallel
def _gemm_kernel(a, b, c, alpha, beta, trans_b):
    """c = alpha * a @ op(b) + beta * c; a (M, K), b (K, N) or (N, K) if trans_b, c (M, N)."""
    m, kdim = a.shape
    n = c.shape[1]
    for i in prange(m):
        crow = c[i]
        if beta == 0.0:
            # BLAS semantics: beta == 0 never reads C (it may hold NaN).
            for j in range(n):
                crow[j] = 0.0
        elif beta != 1.0:
            for j in range(n):
                crow[j] = beta * crow[j]
    if m == 0 or n == 0 or kdim == 0 or alpha == 0.0:
        return
    nbi = (m + _MC - 1) // _MC
    nbj = (n + _NC - 1) // _NC
    # Packed B: one contiguous KC x NC panel per column block, alpha folded in. The
    # transposed case is gathered here once, so the block kernel always sees row-major B.
    bp = np.empty((nbj, min(_KC, kdim), _NC), c.dtype)
    for k0 in range(0, kdim, _KC):
        kc = min(_KC, kdim - k0)
        for t in prange(nbj * kc):
            jb = t // kc
            kk = t - jb * kc
            j0 = jb * _NC
            w = min(_NC, n - j0)
            row = bp[jb, kk]
            if trans_b:
                for j in range(w):
                    row[j] = alpha * b[j0 + j, k0 + kk]
            else:
                src = b[k0 + kk, j0:j0 + w]
                for j in range(w):
                    row[j] = alpha * src[j]
        # Column-panel-major task order: each thread's share keeps few panels hot in its L2.
        for t in prange(nbj * nbi):
            jb = t // nbi
            ib = t - jb * nbi
            i0 = ib * _MC
            j0 = jb * _NC
            _block_madd(a, k0, bp[jb], 0, c, i0, min(m, i0 + _MC), kc, 0, j0,
                        min(_NC, n - j0))


def gemm(a, b, c, alpha, beta, trans_a, trans_b):
    """c = alpha * op(a) @ op(b) + beta * c, in place.

    a (M, K) or (K, M) if trans_a; b (K, N) or (N, K) if trans_b; c (M, N).
    beta == 0 ignores c's old content (it may be NaN).
    """
    if trans_a:
        # Row-major op(a) lets the block kernel read A rows contiguously; O(MK) next to
        # the O(MNK) product.
        at = np.empty((a.shape[1], a.shape[0]), a.dtype)
        _transpose_kernel(a, at)
        a = at
    _gemm_kernel(a, b, c, float(alpha), float(beta), bool(trans_b))


# --------------------------------------------------------------------------------------
# conv2d
# --------------------------------------------------------------------------------------


@_serial
def _conv_tile(pq):
    """Columns per conv tile: about _TILE, split evenly, a multiple of 16 (one zmm of fp32)."""
    ntiles = (pq + _TILE - 1) // _TILE
    t = (pq + ntiles - 1) // ntiles
    return max(1, min(pq, (t + 15) // 16 * 16))


@_serial
def _valid_q_range(off_w, sw, w_in, q_out):
    """[qlo, qhi): output columns q whose input column q*sw + off_w lies in [0, w_in)."""
    if off_w >= 0:
        qlo = 0
    else:
        qlo = (-off_w + sw - 1) // sw
    if w_in - 1 - off_w < 0:
        qhi = 0
    else:
        qhi = min(q_out, (w_in - 1 - off_w) // sw + 1)
    qlo = min(qlo, q_out)
    if qhi < qlo:
        qhi = qlo
    return qlo, qhi


@_serial
def _im2col(xn, col, t0, t1, h, w_in, q_out, r, s, sh, sw, ph, pw, dh, dw):
    """col[(c*R + i)*S + j, t - t0] = x[c, p*sh - ph + i*dh, q*sw - pw + j*dw] (0 outside).

    xn (C, H*W) one image; col (C*R*S, >= t1-t0); t = p*Q + q runs over the flat output
    positions [t0, t1), so a tile may start and end inside an output row.
    """
    c_in = xn.shape[0]
    pa = t0 // q_out
    pb = (t1 - 1) // q_out + 1
    for c in range(c_in):
        xc = xn[c]
        for ri in range(r):
            for si in range(s):
                crow = col[(c * r + ri) * s + si]
                off_w = si * dw - pw
                qlo, qhi = _valid_q_range(off_w, sw, w_in, q_out)
                for p in range(pa, pb):
                    # Column of (p, q) in the tile is rowt + q; the unsigned casts below are
                    # safe (every index is >= 0) and spare the negative-index fix-up, which
                    # both costs time on short rows and blocks vectorisation on long ones.
                    rowt = p * q_out - t0
                    qa = max(0, -rowt)
                    qb = min(q_out, t1 - t0 - rowt)
                    hh = p * sh - ph + ri * dh
                    if hh < 0 or hh >= h:
                        for q in range(qa, qb):
                            crow[np.uint64(rowt + q)] = 0.0
                        continue
                    lo = min(max(qa, qlo), qb)
                    hi = max(min(qb, qhi), lo)
                    for q in range(qa, lo):
                        crow[np.uint64(rowt + q)] = 0.0
                    src0 = hh * w_in + off_w
                    for q in range(lo, hi):
                        crow[np.uint64(rowt + q)] = xc[np.uint64(src0 + q * sw)]
                    for q in range(hi, qb):
                        crow[np.uint64(rowt + q)] = 0.0


@_serial
def _col2im(dcol, dxn, c_lo, c_hi, t0, t1, h, w_in, q_out, r, s, sh, sw, ph, pw, dh, dw):
    """Adjoint of _im2col for channels [c_lo, c_hi): dx[c, h, w] += dcol[...] (accumulates).

    dcol (C*R*S, >= t1-t0) holds flat output positions [t0, t1); dxn (C, H*W) one image.
    """
    pa = t0 // q_out
    pb = (t1 - 1) // q_out + 1
    for c in range(c_lo, c_hi):
        dxc = dxn[c]
        for ri in range(r):
            for si in range(s):
                crow = dcol[(c * r + ri) * s + si]
                off_w = si * dw - pw
                qlo, qhi = _valid_q_range(off_w, sw, w_in, q_out)
                for p in range(pa, pb):
                    hh = p * sh - ph + ri * dh
                    if hh < 0 or hh >= h:
                        continue
                    rowt = p * q_out - t0
                    lo = max(-rowt, qlo)
                    hi = min(t1 - t0 - rowt, qhi)
                    dst0 = hh * w_in + off_w
                    # Distinct q hit distinct input columns, so the adds never collide.
                    for q in range(lo, hi):
                        dxc[np.uint64(dst0 + q * sw)] += crow[np.uint64(rowt + q)]


@_parallel
def _conv2d_forward_kernel(x3, w2, bias, has_bias, y3, h, w_in, q_out, r, s, sh, sw, ph, pw,
                           dh, dw, pointwise, nthreads):
    """y3[n] (K, P*Q) = w2 (K, C*R*S) @ im2col(x3[n]) + bias; x3 (N, C, H*W)."""
    n_img = x3.shape[0]
    k_out, crs = w2.shape
    pq = y3.shape[2]
    tcols = _conv_tile(pq)
    ntiles = (pq + tcols - 1) // tcols
    ntasks = n_img * ntiles
    nch = min(nthreads, ntasks)
    # One im2col buffer per chunk of tasks: private to the thread running that chunk.
    cols = np.empty((nch, 0 if pointwise else crs, tcols), y3.dtype)
    for ch in prange(nch):
        col = cols[ch]
        for t in range(ch * ntasks // nch, (ch + 1) * ntasks // nch):
            n = t // ntiles
            j0 = (t - n * ntiles) * tcols
            width = min(pq, j0 + tcols) - j0
            yn = y3[n]
            for k in range(k_out):
                seg = yn[k, j0:j0 + width]
                bk = bias[k] if has_bias else 0.0
                for j in range(width):
                    seg[j] = bk
            if pointwise:
                _gemm_serial(w2, 0, x3[n], 0, yn, 0, k_out, crs, j0, j0, width)
            else:
                _im2col(x3[n], col, j0, j0 + width, h, w_in, q_out, r, s, sh, sw, ph, pw, dh,
                        dw)
                _gemm_serial(w2, 0, col, 0, yn, 0, k_out, crs, 0, j0, width)


def conv2d_forward(x, w, b, y, sh, sw, ph, pw, dh, dw):
    """2-D cross-correlation (what deep learning calls convolution), in place.

    x (N, C, H, W), w (K, C, R, S), b (K,) or None -> y (N, K, P, Q):
    y[n,k,p,q] = b[k] + sum_{c,r,s} w[k,c,r,s] * x[n, c, p*sh - ph + r*dh, q*sw - pw + s*dw],
    zero outside the input; (ph, pw) is the top/left pad, P and Q come from y.
    """
    n_img, c_in, h, w_in = x.shape
    k_out, _, r, s = w.shape
    p_out, q_out = y.shape[2], y.shape[3]
    if y.size == 0:
        return
    if c_in == 0 or x.size == 0:
        y[...] = 0 if b is None else b.reshape(1, k_out, 1, 1)
        return
    pointwise = (r == 1 and s == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0
                 and p_out == h and q_out == w_in)
    has_bias = b is not None
    bias = b if has_bias else np.empty(0, x.dtype)
    _conv2d_forward_kernel(x.reshape(n_img, c_in, h * w_in), w.reshape(k_out, c_in * r * s),
                           bias, has_bias, y.reshape(n_img, k_out, p_out * q_out),
                           int(h), int(w_in), int(q_out), int(r), int(s), int(sh), int(sw),
                           int(ph), int(pw), int(dh), int(dw), bool(pointwise),
                           numba.get_num_threads())


@_parallel
def _conv2d_backward_data_kernel(dy3, wt, dx3, h, w_in, q_out, r, s, sh, sw, ph, pw, dh, dw,
                                 pointwise, nthreads):
    """dx3[n] (C, H*W) = col2im(wt (C*R*S, K) @ dy3[n] (K, P*Q))."""
    n_img, k_out, pq = dy3.shape
    crs = wt.shape[0]
    c_in = dx3.shape[1]
    hw = dx3.shape[2]
    tcols = _conv_tile(pq)
    ntiles = (pq + tcols - 1) // tcols
    if pointwise:
        # dx[n] = wt @ dy[n] directly: tasks own disjoint column ranges of dx[n].
        for t in prange(n_img * ntiles):
            n = t // ntiles
            j0 = (t - n * ntiles) * tcols
            width = min(pq, j0 + tcols) - j0
            dxn = dx3[n]
            for c in range(c_in):
                seg = dxn[c, j0:j0 + width]
                for j in range(width):
                    seg[j] = 0.0
            _gemm_serial(wt, 0, dy3[n], 0, dxn, 0, c_in, k_out, j0, j0, width)
    elif n_img >= nthreads:
        # Enough images for every thread: whole images per chunk, so col2im's overlapping
        # writes into one image never come from two threads.
        nch = min(nthreads, n_img)
        bufs = np.empty((nch, crs, tcols), dx3.dtype)
        for ch in prange(nch):
            dcol = bufs[ch]
            for n in range(ch * n_img // nch, (ch + 1) * n_img // nch):
                dxn = dx3[n]
                for c in range(c_in):
                    dxc = dxn[c]
                    for j in range(hw):
                        dxc[j] = 0.0
                for tile in range(ntiles):
                    j0 = tile * tcols
                    width = min(pq, j0 + tcols) - j0
                    for i in range(crs):
                        drow = dcol[i]
                        for j in range(width):
                            drow[j] = 0.0
                    _gemm_serial(wt, 0, dy3[n], 0, dcol, 0, crs, k_out, j0, 0, width)
                    _col2im(dcol, dxn, 0, c_in, j0, j0 + width, h, w_in, q_out, r, s, sh, sw,
                            ph, pw, dh, dw)
    else:
        # Few images: parallel GEMM over output tiles into a whole-image column buffer,
        # then parallel col2im over input channels (disjoint planes of dx).
        dcol = np.empty((crs, pq), dx3.dtype)
        for n in range(n_img):
            for tile in prange(ntiles):
                j0 = tile * tcols
                width = min(pq, j0 + tcols) - j0
                for i in range(crs):
                    drow = dcol[i, j0:j0 + width]
                    for j in range(width):
                        drow[j] = 0.0
                _gemm_serial(wt, 0, dy3[n], 0, dcol, 0, crs, k_out, j0, j0, width)
            dxn = dx3[n]
            for c in prange(c_in):
                dxc = dxn[c]
                for j in range(hw):
                    dxc[j] = 0.0
                _col2im(dcol, dxn, c, c + 1, 0, pq, h, w_in, q_out, r, s, sh, sw, ph, pw, dh,
                        dw)


def conv2d_backward_data(dy, w, dx, sh, sw, ph, pw, dh, dw):
    """Gradient of sum(dy * conv2d_forward(x, w)) with respect to x, in place.

    dy (N, K, P, Q), w (K, C, R, S) -> dx (N, C, H, W); stride, top/left pad and dilation
    as in conv2d_forward.
    """
    n_img, c_in, h, w_in = dx.shape
    k_out, _, r, s = w.shape
    p_out, q_out = dy.shape[2], dy.shape[3]
    if dx.size == 0:
        return
    if dy.size == 0:
        dx[...] = 0
        return
    crs = c_in * r * s
    wt = np.empty((crs, k_out), w.dtype)
    _transpose_kernel(w.reshape(k_out, crs), wt)
    pointwise = (r == 1 and s == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0
                 and p_out == h and q_out == w_in)
    _conv2d_backward_data_kernel(dy.reshape(n_img, k_out, p_out * q_out), wt,
                                 dx.reshape(n_img, c_in, h * w_in), int(h), int(w_in),
                                 int(q_out), int(r), int(s), int(sh), int(sw), int(ph), int(pw),
                                 int(dh), int(dw), bool(pointwise), numba.get_num_threads())


@_parallel
def _conv2d_backward_weight_kernel(dy3, x3, dw2, h, w_in, q_out, r, s, sh, sw, ph, pw, dh, dw,
                                   pointwise, nthreads):
    """dw2 (K, C*R*S) = sum_n dy3[n] (K, P*Q) @ im2col(x3[n]).T (P*Q, C*R*S)."""
    n_img, k_out, pq = dy3.shape
    crs = dw2.shape[1]
    tcols = _conv_tile(pq)
    ntiles = (pq + tcols - 1) // tcols
    ntasks = n_img * ntiles
    nch = min(nthreads, ntasks)
    # Each chunk of tasks sums into its own partial dW; reduced below in a fixed order.
    partial = np.empty((nch, k_out, crs), dw2.dtype)
    cols = np.empty((nch, 0 if pointwise else crs, tcols), dw2.dtype)
    colts = np.empty((nch, tcols, crs), dw2.dtype)
    for ch in prange(nch):
        acc = partial[ch]
        col = cols[ch]
        colt = colts[ch]
        for k in range(k_out):
            arow = acc[k]
            for j in range(crs):
                arow[j] = 0.0
        for t in range(ch * ntasks // nch, (ch + 1) * ntasks // nch):
            n = t // ntiles
            j0 = (t - n * ntiles) * tcols
            width = min(pq, j0 + tcols) - j0
            # The block kernel wants B row-major in the reduction index (output position),
            # contiguous over C*R*S, so the column tile is transposed in cache.
            if pointwise:
                _transpose_into(x3[n], j0, crs, width, colt)
            else:
                _im2col(x3[n], col, j0, j0 + width, h, w_in, q_out, r, s, sh, sw, ph, pw, dh,
                        dw)
                _transpose_into(col, 0, crs, width, colt)
            _gemm_serial(dy3[n], j0, colt, 0, acc, 0, k_out, width, 0, 0, crs)
    for k in prange(k_out):
        drow = dw2[k]
        for j in range(crs):
            drow[j] = 0.0
        for ch in range(nch):
            prow = partial[ch, k]
            for j in range(crs):
                drow[j] += prow[j]


def conv2d_backward_weight(dy, x, dw_out, sh, sw, ph, pw, dh, dw):
    """Gradient of sum(dy * conv2d_forward(x, w)) with respect to w, summed over the batch.

    dy (N, K, P, Q), x (N, C, H, W) -> dw_out (K, C, R, S); stride, top/left pad and
    dilation as in conv2d_forward.
    """
    n_img, c_in, h, w_in = x.shape
    k_out, _, r, s = dw_out.shape
    p_out, q_out = dy.shape[2], dy.shape[3]
    if dw_out.size == 0:
        return
    if dy.size == 0 or x.size == 0:
        dw_out[...] = 0
        return
    pointwise = (r == 1 and s == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0
                 and p_out == h and q_out == w_in)
    _conv2d_backward_weight_kernel(dy.reshape(n_img, k_out, p_out * q_out),
                                   x.reshape(n_img, c_in, h * w_in),
                                   dw_out.reshape(k_out, c_in * r * s), int(h), int(w_in),
                                   int(q_out), int(r), int(s), int(sh), int(sw), int(ph),
                                   int(pw), int(dh), int(dw), bool(pointwise),
                                   numba.get_num_threads())


@_parallel
def _conv2d_backward_bias_kernel(dy3, db):
    """db[k] = sum over n and positions of dy3[n, k, :]; dy3 (N, K, P*Q)."""
    n_img, k_out, pq = dy3.shape
    for k in prange(k_out):
        # Four float64 partial sums: accuracy for float32 and independent add chains.
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        for n in range(n_img):
            row = dy3[n, k]
            j = 0
            while j + 4 <= pq:
                s0 += row[j]
                s1 += row[j + 1]
                s2 += row[j + 2]
                s3 += row[j + 3]
                j += 4
            while j < pq:
                s0 += row[j]
                j += 1
        db[k] = (s0 + s1) + (s2 + s3)


def conv2d_backward_bias(dy, db):
    """Bias gradient: dy (N, K, P, Q) -> db (K,) = dy summed over N, P and Q."""
    n_img, k_out = dy.shape[0], dy.shape[1]
    _conv2d_backward_bias_kernel(dy.reshape(n_img, k_out, dy.shape[2] * dy.shape[3]), db)


# --------------------------------------------------------------------------------------
# pooling
# --------------------------------------------------------------------------------------


@_serial
def _max_tap(xp, src0, sw, yq, iq):
    """One window tap for a run of outputs: xp[src0 + k*sw] challenges (yq[k], iq[k])."""
    for k in range(yq.shape[0]):
        src = src0 + k * sw
        v = xp[np.uint64(src)]
        cur = yq[k]
        # Strictly greater wins (first max on ties); a NaN always wins.
        take = (v > cur) | (v != v)
        yq[k] = v if take else cur
        iq[k] = src if take else iq[k]


@_serial
def _sum_tap(xp, src0, sw, yq):
    """One window tap for a run of outputs: yq[k] += xp[src0 + k*sw]."""
    for k in range(yq.shape[0]):
        yq[k] += xp[np.uint64(src0 + k * sw)]


@_parallel
def _max_pool2d_forward_kernel(x3, y3, idx3, h, w_in, q_out, kh, kw, sh, sw, ph, pw):
    """Per plane: y = window max, idx = flat h*W + w of it; x3 (NC, H*W), y3/idx3 (NC, P*Q)."""
    planes = x3.shape[0]
    p_out = y3.shape[1] // q_out
    for pl in prange(planes):
        xp = x3[pl]
        for p in range(p_out):
            yr = y3[pl, p * q_out:(p + 1) * q_out]
            ir = idx3[pl, p * q_out:(p + 1) * q_out]
            hs = p * sh - ph
            h0 = max(hs, 0)
            # PyTorch starts from -inf at the window's first real element.
            for q in range(q_out):
                yr[q] = -np.inf
                ir[q] = h0 * w_in + max(q * sw - pw, 0)
            # Taps in row-major window order, each applied to the whole output row at once:
            # the per-output order is unchanged, and the row loop is branch-free and
            # vectorisable where a per-window scalar loop mispredicts on every new max.
            for i in range(kh):
                hh = hs + i
                if hh < 0 or hh >= h:
                    continue
                for j in range(kw):
                    qlo, qhi = _valid_q_range(j - pw, sw, w_in, q_out)
                    src0 = hh * w_in + j - pw + qlo * sw
                    yq = yr[qlo:qhi]
                    iq = ir[qlo:qhi]
                    # A literal stride lets LLVM vectorise the strided load (common cases).
                    if sw == 1:
                        _max_tap(xp, src0, 1, yq, iq)
                    elif sw == 2:
                        _max_tap(xp, src0, 2, yq, iq)
                    else:
                        _max_tap(xp, src0, sw, yq, iq)


def max_pool2d_forward(x, y, indices, kh, kw, sh, sw, ph, pw):
    """Max pooling with argmax, in place; padding is -inf (padded positions never win).

    x (N, C, H, W) -> y (N, C, P, Q), indices int64 (N, C, P, Q) holding the flat index
    h*W + w inside the input plane. Ties keep the first maximum in row-major window order;
    a NaN in the window propagates.
    """
    n_img, c_in, h, w_in = x.shape
    p_out, q_out = y.shape[2], y.shape[3]
    if y.size == 0:
        return
    planes = n_img * c_in
    _max_pool2d_forward_kernel(x.reshape(planes, h * w_in), y.reshape(planes, p_out * q_out),
                               indices.reshape(planes, p_out * q_out), int(h), int(w_in),
                               int(q_out), int(kh), int(kw), int(sh), int(sw), int(ph), int(pw))


@_parallel
def _max_pool2d_backward_kernel(dy3, idx3, dx3):
    """Per plane: dx = 0; dx[idx] += dy; dy3/idx3 (NC, P*Q), dx3 (NC, H*W)."""
    planes, pq = dy3.shape
    hw = dx3.shape[1]
    for pl in prange(planes):
        dxp = dx3[pl]
        dyp = dy3[pl]
        ip = idx3[pl]
        for j in range(hw):
            dxp[j] = 0.0
        for j in range(pq):
            dxp[ip[j]] += dyp[j]


def max_pool2d_backward(dy, indices, dx):
    """Max pooling gradient, in place: dy, indices (N, C, P, Q) -> dx (N, C, H, W).

    dx is zero-filled, then each dy element is added at its argmax (overlapping windows
    accumulate).
    """
    n_img, c_in, h, w_in = dx.shape
    if dx.size == 0:
        return
    planes = n_img * c_in
    pq = dy.shape[2] * dy.shape[3]
    _max_pool2d_backward_kernel(dy.reshape(planes, pq), indices.reshape(planes, pq),
                                dx.reshape(planes, h * w_in))


@_serial
def _avg_window(p, q, h, w_in, kh, kw, sh, sw, ph, pw, count_include_pad):
    """PyTorch's window for output (p, q): clipped [h0, h1) x [w0, w1) and its divisor."""
    h0 = p * sh - ph
    w0 = q * sw - pw
    h1 = min(h0 + kh, h + ph)
    w1 = min(w0 + kw, w_in + pw)
    pool_size = (h1 - h0) * (w1 - w0)
    h0 = max(h0, 0)
    w0 = max(w0, 0)
    h1 = min(h1, h)
    w1 = min(w1, w_in)
    if count_include_pad:
        divisor = pool_size
    else:
        divisor = (h1 - h0) * (w1 - w0)
    return h0, h1, w0, w1, divisor


@_parallel
def _avg_pool2d_forward_kernel(x3, y3, h, w_in, q_out, kh, kw, sh, sw, ph, pw,
                               count_include_pad):
    """Per plane window means; x3 (NC, H*W), y3 (NC, P*Q)."""
    planes = x3.shape[0]
    p_out = y3.shape[1] // q_out
    for pl in prange(planes):
        xp = x3[pl]
        for p in range(p_out):
            yr = y3[pl, p * q_out:(p + 1) * q_out]
            for q in range(q_out):
                yr[q] = 0.0
            # Whole output row per tap: independent adds that vectorise, instead of one
            # latency-bound chain per window.
            hs = p * sh - ph
            for i in range(kh):
                hh = hs + i
                if hh < 0 or hh >= h:
                    continue
                for j in range(kw):
                    qlo, qhi = _valid_q_range(j - pw, sw, w_in, q_out)
                    src0 = hh * w_in + j - pw + qlo * sw
                    yq = yr[qlo:qhi]
                    if sw == 1:
                        _sum_tap(xp, src0, 1, yq)
                    elif sw == 2:
                        _sum_tap(xp, src0, 2, yq)
                    else:
                        _sum_tap(xp, src0, sw, yq)
            for q in range(q_out):
                h0, h1, w0, w1, divisor = _avg_window(p, q, h, w_in, kh, kw, sh, sw, ph, pw,
                                                      count_include_pad)
                if h0 >= h1 or w0 >= w1 or divisor <= 0:
                    yr[q] = 0.0
                else:
                    yr[q] = yr[q] / divisor


def avg_pool2d_forward(x, y, kh, kw, sh, sw, ph, pw, count_include_pad):
    """Average pooling (PyTorch semantics, ceil_mode=False), in place.

    x (N, C, H, W) -> y (N, C, P, Q). Window rows hstart = p*sh - ph,
    hend = min(hstart + kh, H + ph); the padded size (hend-hstart)*(wend-wstart) is the
    divisor when count_include_pad, else the number of real elements in the clipped window.
    """
    n_img, c_in, h, w_in = x.shape
    p_out, q_out = y.shape[2], y.shape[3]
    if y.size == 0:
        return
    planes = n_img * c_in
    _avg_pool2d_forward_kernel(x.reshape(planes, h * w_in), y.reshape(planes, p_out * q_out),
                               int(h), int(w_in), int(q_out), int(kh), int(kw), int(sh),
                               int(sw), int(ph), int(pw), bool(count_include_pad))


@_parallel
def _avg_pool2d_backward_kernel(dy3, dx3, h, w_in, q_out, kh, kw, sh, sw, ph, pw,
                                count_include_pad):
    """Per plane: dx = 0, then each window gets dy / divisor; dy3 (NC, P*Q), dx3 (NC, H*W)."""
    planes = dy3.shape[0]
    p_out = dy3.shape[1] // q_out
    hw = dx3.shape[1]
    for pl in prange(planes):
        dxp = dx3[pl]
        dyp = dy3[pl]
        for j in range(hw):
            dxp[j] = 0.0
        for p in range(p_out):
            for q in range(q_out):
                h0, h1, w0, w1, divisor = _avg_window(p, q, h, w_in, kh, kw, sh, sw, ph, pw,
                                                      count_include_pad)
                if h0 >= h1 or w0 >= w1 or divisor <= 0:
                    continue
                g = dyp[p * q_out + q] / divisor
                for hh in range(h0, h1):
                    row = dxp[hh * w_in + w0:hh * w_in + w1]
                    for ww in range(w1 - w0):
                        row[ww] += g


def avg_pool2d_backward(dy, dx, kh, kw, sh, sw, ph, pw, count_include_pad):
    """Average pooling gradient, in place: dy (N, C, P, Q) -> dx (N, C, H, W).

    Same windows and divisors as avg_pool2d_forward; overlapping windows accumulate.
    """
    n_img, c_in, h, w_in = dx.shape
    p_out, q_out = dy.shape[2], dy.shape[3]
    if dx.size == 0:
        return
    if dy.size == 0:
        dx[...] = 0
        return
    planes = n_img * c_in
    _avg_pool2d_backward_kernel(dy.reshape(planes, p_out * q_out), dx.reshape(planes, h * w_in),
                                int(h), int(w_in), int(q_out), int(kh), int(kw), int(sh),
                                int(sw), int(ph), int(pw), bool(count_include_pad))


# --------------------------------------------------------------------------------------
# batch norm
# --------------------------------------------------------------------------------------


# Channels per task when L == 1 (BatchNorm1d): the reductions then run across channels,
# contiguous in memory, instead of down a strided column per channel.
_BN_BLOCK = 64


@_parallel
def _bn_moments(x, shift, s1, s2):
    """Per channel c: shift[c] = x[0, c, 0], s1 = sum(x - shift), s2 = sum((x - shift)^2).

    x (N, C, L), outputs (C,) float64. Subtracting a sample of the channel first keeps the
    one-pass variance exact enough in float64 even when |mean| >> std.
    """
    n_img, channels, length = x.shape
    if n_img == 0 or length == 0:
        for c in range(channels):
            shift[c] = 0.0
            s1[c] = 0.0
            s2[c] = 0.0
        return
    if length > 1:
        for c in prange(channels):
            sh = np.float64(x[0, c, 0])
            # Four chains so the float64 adds overlap instead of waiting on each other.
            a0 = 0.0
            a1 = 0.0
            a2 = 0.0
            a3 = 0.0
            b0 = 0.0
            b1 = 0.0
            b2 = 0.0
            b3 = 0.0
            for n in range(n_img):
                row = x[n, c]
                j = 0
                while j + 4 <= length:
                    d0 = row[j] - sh
                    d1 = row[j + 1] - sh
                    d2 = row[j + 2] - sh
                    d3 = row[j + 3] - sh
                    a0 += d0
                    a1 += d1
                    a2 += d2
                    a3 += d3
                    b0 += d0 * d0
                    b1 += d1 * d1
                    b2 += d2 * d2
                    b3 += d3 * d3
                    j += 4
                while j < length:
                    d0 = row[j] - sh
                    a0 += d0
                    b0 += d0 * d0
                    j += 1
            shift[c] = sh
            s1[c] = (a0 + a1) + (a2 + a3)
            s2[c] = (b0 + b1) + (b2 + b3)
    else:
        x2 = x.reshape(n_img, channels)
        for blk in prange((channels + _BN_BLOCK - 1) // _BN_BLOCK):
            c0 = blk * _BN_BLOCK
            c1 = min(channels, c0 + _BN_BLOCK)
            shb = shift[c0:c1]
            s1b = s1[c0:c1]
            s2b = s2[c0:c1]
            first = x2[0, c0:c1]
            for cc in range(c1 - c0):
                shb[cc] = first[cc]
                s1b[cc] = 0.0
                s2b[cc] = 0.0
            for n in range(n_img):
                xr = x2[n, c0:c1]
                for cc in range(c1 - c0):
                    d = xr[cc] - shb[cc]
                    s1b[cc] += d
                    s2b[cc] += d * d


@_parallel
def _bn_grad_sums(dy, x, mean, s1, s2):
    """Per channel c: s1 = sum(dy), s2 = sum(dy * (x - mean[c])); dy, x (N, C, L) -> (C,) f64."""
    n_img, channels, length = x.shape
    if n_img == 0 or length == 0:
        for c in range(channels):
            s1[c] = 0.0
            s2[c] = 0.0
        return
    if length > 1:
        for c in prange(channels):
            mu = np.float64(mean[c])
            a0 = 0.0
            a1 = 0.0
            a2 = 0.0
            a3 = 0.0
            b0 = 0.0
            b1 = 0.0
            b2 = 0.0
            b3 = 0.0
            for n in range(n_img):
                g = dy[n, c]
                row = x[n, c]
                j = 0
                while j + 4 <= length:
                    g0 = np.float64(g[j])
                    g1 = np.float64(g[j + 1])
                    g2 = np.float64(g[j + 2])
                    g3 = np.float64(g[j + 3])
                    a0 += g0
                    a1 += g1
                    a2 += g2
                    a3 += g3
                    b0 += g0 * (row[j] - mu)
                    b1 += g1 * (row[j + 1] - mu)
                    b2 += g2 * (row[j + 2] - mu)
                    b3 += g3 * (row[j + 3] - mu)
                    j += 4
                while j < length:
                    g0 = np.float64(g[j])
                    a0 += g0
                    b0 += g0 * (row[j] - mu)
                    j += 1
            s1[c] = (a0 + a1) + (a2 + a3)
            s2[c] = (b0 + b1) + (b2 + b3)
    else:
        x2 = x.reshape(n_img, channels)
        dy2 = dy.reshape(n_img, channels)
        for blk in prange((channels + _BN_BLOCK - 1) // _BN_BLOCK):
            c0 = blk * _BN_BLOCK
            c1 = min(channels, c0 + _BN_BLOCK)
            mb = mean[c0:c1]
            s1b = s1[c0:c1]
            s2b = s2[c0:c1]
            for cc in range(c1 - c0):
                s1b[cc] = 0.0
                s2b[cc] = 0.0
            for n in range(n_img):
                xr = x2[n, c0:c1]
                gr = dy2[n, c0:c1]
                for cc in range(c1 - c0):
                    g0 = np.float64(gr[cc])
                    s1b[cc] += g0
                    s2b[cc] += g0 * (np.float64(xr[cc]) - mb[cc])


@_parallel
def _bn_affine(src, out, mu, scale, shift, src2, scale2, use2):
    """out[n,c,l] = (src[n,c,l] - mu[c]) * scale[c] + shift[c] (+ src2[n,c,l] * scale2[c]).

    src, src2, out (N, C, L); mu, scale, shift, scale2 (C,) float64; the src2 term only when
    use2 (otherwise pass src and any scale2: an inf input must not turn into inf*0 = NaN).
    Evaluated in float64, rounded once on the store.
    """
    n_img, channels, length = src.shape
    if length > 1:
        for t in prange(n_img * channels):
            n = t // channels
            c = t - n * channels
            m = mu[c]
            a = scale[c]
            b = shift[c]
            a2 = scale2[c]
            xr = src[n, c]
            x2r = src2[n, c]
            yr = out[n, c]
            if use2:
                for j in range(length):
                    yr[j] = (xr[j] - m) * a + b + x2r[j] * a2
            else:
                for j in range(length):
                    yr[j] = (xr[j] - m) * a + b
    else:
        s2d = src.reshape(n_img, channels)
        t2d = src2.reshape(n_img, channels)
        o2d = out.reshape(n_img, channels)
        for n in prange(n_img):
            xr = s2d[n]
            x2r = t2d[n]
            yr = o2d[n]
            if use2:
                for c in range(channels):
                    yr[c] = (xr[c] - mu[c]) * scale[c] + shift[c] + x2r[c] * scale2[c]
            else:
                for c in range(channels):
                    yr[c] = (xr[c] - mu[c]) * scale[c] + shift[c]


def batch_norm_forward_training(x, weight, bias, y, mean, var, invstd, eps):
    """Training-mode batch norm with batch statistics, in place.

    x (N, C, L), weight (C,), bias (C,) -> y (N, C, L), mean (C,), var (C,) (biased, over
    the M = N*L elements of a channel), invstd (C,) = 1 / sqrt(var + eps);
    y = (x - mean) * invstd * weight + bias.
    """
    n_img, channels, length = x.shape
    m = n_img * length
    shift = np.empty(channels)
    s1 = np.empty(channels)
    s2 = np.empty(channels)
    _bn_moments(x, shift, s1, s2)
    # Per-channel vectors are O(C): plain float64 NumPy here, the O(N*C*L) work is in numba.
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = shift + s1 / m
        v = np.maximum((s2 - s1 * s1 / m) / m, 0.0)
    inv = 1.0 / np.sqrt(v + eps)
    mean[...] = mu
    var[...] = v
    invstd[...] = inv
    _bn_affine(x, y, mu, inv * weight, bias.astype(np.float64), x, mu, False)


def batch_norm_forward_inference(x, weight, bias, running_mean, running_var, y, eps):
    """Inference-mode batch norm with running statistics, in place.

    x (N, C, L), weight/bias/running_mean/running_var (C,) -> y (N, C, L) =
    (x - running_mean) / sqrt(running_var + eps) * weight + bias.
    """
    scale = weight.astype(np.float64) / np.sqrt(running_var.astype(np.float64) + eps)
    mu = running_mean.astype(np.float64)
    _bn_affine(x, y, mu, scale, bias.astype(np.float64), x, mu, False)


def batch_norm_backward(dy, x, weight, mean, invstd, dx, dweight, dbias):
    """Training-mode batch norm backward, in place.

    dy, x (N, C, L), weight, mean, invstd (C,) -> dx (N, C, L), dweight (C,), dbias (C,):
    xhat = (x - mean) * invstd, dbias = sum(dy), dweight = sum(dy * xhat),
    dx = weight * invstd / M * (M * dy - dbias - xhat * dweight), sums over N and L.
    """
    n_img, channels, length = x.shape
    m = n_img * length
    mu = mean.astype(np.float64)
    inv = invstd.astype(np.float64)
    s1 = np.empty(channels)
    s2 = np.empty(channels)
    _bn_grad_sums(dy, x, mu, s1, s2)
    db = s1
    dwt = s2 * inv
    dbias[...] = db
    dweight[...] = dwt
    if m == 0:
        return
    # dx = k1*dy - k2 - k3*(x - mean): expanded so one fused pass over the data does it.
    k1 = weight.astype(np.float64) * inv
    k2 = k1 * db / m
    k3 = k1 * inv * dwt / m
    _bn_affine(x, dx, mu, -k3, -k2, dy, k1, True)


# --------------------------------------------------------------------------------------
# Element-wise activations (flat views of contiguous arrays)
# --------------------------------------------------------------------------------------


@_parallel
def _tanh_fwd(x, y):
    for i in prange(x.size):
        y[i] = math.tanh(x[i])


@_parallel
def _tanh_bwd(dy, y, dx):
    for i in prange(dy.size):
        dx[i] = dy[i] * (1 - y[i] * y[i])


@_parallel
def _sigmoid_fwd(x, y):
    for i in prange(x.size):
        v = x[i]
        e = math.exp(-abs(v))
        y[i] = 1 / (1 + e) if v >= 0 else e / (1 + e)


@_parallel
def _sigmoid_bwd(dy, y, dx):
    for i in prange(dy.size):
        dx[i] = dy[i] * y[i] * (1 - y[i])


@_parallel
def _leaky_fwd(x, y, slope):
    for i in prange(x.size):
        v = x[i]
        # ReLU (slope 0) of -inf is 0, where slope * -inf would be NaN; NaN stays NaN
        y[i] = v if v > 0 or v != v else (slope * v if slope != 0 else 0)


@_parallel
def _leaky_bwd(dy, x, dx, slope):
    for i in prange(dy.size):
        dx[i] = dy[i] if x[i] > 0 else slope * dy[i]


@_parallel
def _elu_fwd(x, y, alpha, scale):
    for i in prange(x.size):
        y[i] = scale * (x[i] if x[i] > 0 else alpha * math.expm1(x[i]))


@_parallel
def _elu_bwd(dy, x, dx, alpha, scale):
    for i in prange(dy.size):
        # x <= 0 takes the exponential branch, so NaN takes the other one (as PyTorch)
        dx[i] = dy[i] * scale * (alpha * math.exp(x[i]) if x[i] <= 0 else 1.0)


_SQRT_2_PI = math.sqrt(2 / math.pi)


# Phi(x) = erfc(-x / sqrt 2) / 2 and (1 + tanh(u)) / 2 = sigmoid(2u): no cancellation for
# negative x, where 1 + erf(...) would keep few float32 digits.
@numba.njit(cache=True, inline="always")
def _gelu1(v, approximate):
    if approximate:
        return v / (1 + math.exp(-2 * _SQRT_2_PI * (v + 0.044715 * v * v * v)))
    return 0.5 * v * math.erfc(-v / math.sqrt(2.0))


@numba.njit(cache=True, inline="always")
def _gelu_grad1(v, approximate):
    if approximate:
        s = 1 / (1 + math.exp(-2 * _SQRT_2_PI * (v + 0.044715 * v * v * v)))
        return s + 2 * v * s * (1 - s) * _SQRT_2_PI * (1 + 3 * 0.044715 * v * v)
    return 0.5 * math.erfc(-v / math.sqrt(2.0)) + v * math.exp(-0.5 * v * v) / math.sqrt(
        2 * math.pi)


@_parallel
def _gelu_fwd(x, y, approximate):
    for i in prange(x.size):
        y[i] = _gelu1(x[i], approximate)


@_parallel
def _gelu_bwd(dy, x, dx, approximate):
    for i in prange(dy.size):
        dx[i] = dy[i] * _gelu_grad1(x[i], approximate)


def tanh_forward(x, y):
    """y = tanh(x); any shape, flat."""
    _tanh_fwd(x.reshape(-1), y.reshape(-1))


def tanh_backward(dy, y, dx):
    """dx = dy * (1 - y^2)."""
    _tanh_bwd(dy.reshape(-1), y.reshape(-1), dx.reshape(-1))


def sigmoid_forward(x, y):
    """y = 1 / (1 + exp(-x)), stable for large |x|."""
    _sigmoid_fwd(x.reshape(-1), y.reshape(-1))


def sigmoid_backward(dy, y, dx):
    """dx = dy * y * (1 - y)."""
    _sigmoid_bwd(dy.reshape(-1), y.reshape(-1), dx.reshape(-1))


def leaky_relu_forward(x, y, slope):
    """y = x if x > 0 else slope * x (ReLU for slope 0)."""
    _leaky_fwd(x.reshape(-1), y.reshape(-1), x.dtype.type(slope))


def leaky_relu_backward(dy, x, dx, slope):
    """dx = dy if x > 0 else slope * dy."""
    _leaky_bwd(dy.reshape(-1), x.reshape(-1), dx.reshape(-1), dy.dtype.type(slope))


def elu_forward(x, y, alpha, scale):
    """y = scale * (x if x > 0 else alpha * (exp(x) - 1))."""
    _elu_fwd(x.reshape(-1), y.reshape(-1), x.dtype.type(alpha), x.dtype.type(scale))


def elu_backward(dy, x, dx, alpha, scale):
    """dx = dy * scale * (alpha * exp(x) if x <= 0 else 1)."""
    _elu_bwd(dy.reshape(-1), x.reshape(-1), dx.reshape(-1), dy.dtype.type(alpha),
             dy.dtype.type(scale))


def gelu_forward(x, y, approximate):
    """y = gelu(x): x * Phi(x) (approximate 0) or its tanh form (1)."""
    _gelu_fwd(x.reshape(-1), y.reshape(-1), bool(approximate))


def gelu_backward(dy, x, dx, approximate):
    """dx = dy * gelu'(x)."""
    _gelu_bwd(dy.reshape(-1), x.reshape(-1), dx.reshape(-1), bool(approximate))


# --------------------------------------------------------------------------------------
# recurrent cells (rnn.cpp's twins): one time step over a batch, gate order as PyTorch's.
# Parallel over blocks of hidden columns, every row inside a block, so that the bias
# gradients (column sums) belong to one thread each and the inner loop runs along rows.
# --------------------------------------------------------------------------------------


_RNN_BLOCK = 32


@_serial
def _sigmoid1(v):
    e = math.exp(-abs(v))
    return 1 / (1 + e) if v >= 0 else e / (1 + e)


@_parallel
def _lstm_fwd(gates, bias, c_prev, h, c, act):
    nb, hid = c_prev.shape
    for blk in prange((hid + _RNN_BLOCK - 1) // _RNN_BLOCK):
        j0 = blk * _RNN_BLOCK
        j1 = min(hid, j0 + _RNN_BLOCK)
        for b in range(nb):
            for j in range(j0, j1):
                i = _sigmoid1(gates[b, j] + bias[j])
                f = _sigmoid1(gates[b, hid + j] + bias[hid + j])
                g = math.tanh(gates[b, 2 * hid + j] + bias[2 * hid + j])
                o = _sigmoid1(gates[b, 3 * hid + j] + bias[3 * hid + j])
                cn = f * c_prev[b, j] + i * g
                c[b, j] = cn
                h[b, j] = o * math.tanh(cn)
                act[b, j] = i
                act[b, hid + j] = f
                act[b, 2 * hid + j] = g
                act[b, 3 * hid + j] = o


@_parallel
def _lstm_bwd(act, c_prev, c, dh, dc, dgates, dc_prev, db, accumulate):
    nb, hid = c_prev.shape
    for blk in prange((hid + _RNN_BLOCK - 1) // _RNN_BLOCK):
        j0 = blk * _RNN_BLOCK
        j1 = min(hid, j0 + _RNN_BLOCK)
        if not accumulate:
            for q in range(4):
                for j in range(j0, j1):
                    db[q * hid + j] = 0
        for b in range(nb):
            for j in range(j0, j1):
                i = act[b, j]
                f = act[b, hid + j]
                g = act[b, 2 * hid + j]
                o = act[b, 3 * hid + j]
                tc = math.tanh(c[b, j])
                gh = dh[b, j]
                dct = dc[b, j] + gh * o * (1 - tc * tc)
                di = dct * g * i * (1 - i)
                df = dct * c_prev[b, j] * f * (1 - f)
                dg = dct * i * (1 - g * g)
                do = gh * tc * o * (1 - o)
                dc_prev[b, j] = dct * f
                dgates[b, j] = di
                dgates[b, hid + j] = df
                dgates[b, 2 * hid + j] = dg
                dgates[b, 3 * hid + j] = do
                db[j] += di
                db[hid + j] += df
                db[2 * hid + j] += dg
                db[3 * hid + j] += do


@_parallel
def _gru_fwd(gx, gh, b_ih, b_hh, h_prev, h, act):
    nb, hid = h_prev.shape
    for blk in prange((hid + _RNN_BLOCK - 1) // _RNN_BLOCK):
        j0 = blk * _RNN_BLOCK
        j1 = min(hid, j0 + _RNN_BLOCK)
        for b in range(nb):
            for j in range(j0, j1):
                r = _sigmoid1(gx[b, j] + b_ih[j] + gh[b, j] + b_hh[j])
                z = _sigmoid1(gx[b, hid + j] + b_ih[hid + j] + gh[b, hid + j] + b_hh[hid + j])
                hn = gh[b, 2 * hid + j] + b_hh[2 * hid + j]
                n = math.tanh(gx[b, 2 * hid + j] + b_ih[2 * hid + j] + r * hn)
                h[b, j] = n + z * (h_prev[b, j] - n)
                act[b, j] = r
                act[b, hid + j] = z
                act[b, 2 * hid + j] = n
                act[b, 3 * hid + j] = hn


@_parallel
def _gru_bwd(act, h_prev, dh, dgx, dgh, dh_prev, dbx, dbh, accumulate):
    nb, hid = h_prev.shape
    for blk in prange((hid + _RNN_BLOCK - 1) // _RNN_BLOCK):
        j0 = blk * _RNN_BLOCK
        j1 = min(hid, j0 + _RNN_BLOCK)
        if not accumulate:
            for q in range(3):
                for j in range(j0, j1):
                    dbx[q * hid + j] = 0
                    dbh[q * hid + j] = 0
        for b in range(nb):
            for j in range(j0, j1):
                r = act[b, j]
                z = act[b, hid + j]
                n = act[b, 2 * hid + j]
                hn = act[b, 3 * hid + j]
                g = dh[b, j]
                dn = g * (1 - z) * (1 - n * n)
                dz = g * (h_prev[b, j] - n) * z * (1 - z)
                dr = dn * hn * r * (1 - r)
                dgx[b, j] = dr
                dgx[b, hid + j] = dz
                dgx[b, 2 * hid + j] = dn
                dgh[b, j] = dr
                dgh[b, hid + j] = dz
                dgh[b, 2 * hid + j] = dn * r
                if accumulate:
                    dh_prev[b, j] += g * z
                else:
                    dh_prev[b, j] = g * z
                dbx[j] += dr
                dbx[hid + j] += dz
                dbx[2 * hid + j] += dn
                dbh[j] += dr
                dbh[hid + j] += dz
                dbh[2 * hid + j] += dn * r


@_parallel
def _rnn_fwd(pre, bias, h, relu):
    nb, hid = pre.shape
    for b in prange(nb):
        for j in range(hid):
            v = pre[b, j] + bias[j]
            h[b, j] = (v if v > 0 else 0) if relu else math.tanh(v)


@_parallel
def _rnn_bwd(h, dh, dpre, db, relu, accumulate):
    nb, hid = h.shape
    for blk in prange((hid + _RNN_BLOCK - 1) // _RNN_BLOCK):
        j0 = blk * _RNN_BLOCK
        j1 = min(hid, j0 + _RNN_BLOCK)
        if not accumulate:
            for j in range(j0, j1):
                db[j] = 0
        for b in range(nb):
            for j in range(j0, j1):
                y = h[b, j]
                if relu:
                    d = dh[b, j] if y > 0 else dh[b, j] * 0
                else:
                    d = dh[b, j] * (1 - y * y)
                dpre[b, j] = d
                db[j] += d


def lstm_cell_forward(gates, bias, c_prev, h, c, act):
    """gates (B, 4H) pre-activations i, f, g, o less bias (4H); c_prev (B, H) -> h, c (B, H),
    act (B, 4H) activated (act may be gates)."""
    _lstm_fwd(gates, bias, c_prev, h, c, act)


def lstm_cell_backward(act, c_prev, c, dh, dc, dgates, dc_prev, db, accumulate):
    """-> dgates (B, 4H), dc_prev (B, H) (may be dc), db (4H) column sums of dgates."""
    _lstm_bwd(act, c_prev, c, dh, dc, dgates, dc_prev, db, bool(accumulate))


def gru_cell_forward(gx, gh, b_ih, b_hh, h_prev, h, act):
    """gx, gh (B, 3H), b_ih, b_hh (3H), h_prev (B, H) -> h (B, H), act (B, 4H) = r, z, n,
    hn."""
    _gru_fwd(gx, gh, b_ih, b_hh, h_prev, h, act)


def gru_cell_backward(act, h_prev, dh, dgx, dgh, dh_prev, dbx, dbh, accumulate):
    """-> dgx, dgh (B, 3H), dh_prev (B, H) = dh * z, dbx, dbh (3H)."""
    _gru_bwd(act, h_prev, dh, dgx, dgh, dh_prev, dbx, dbh, bool(accumulate))


def rnn_cell_forward(pre, bias, h, relu):
    """pre (B, H), bias (H) -> h = tanh or relu of pre + bias (h may be pre)."""
    _rnn_fwd(pre, bias, h, bool(relu))


def rnn_cell_backward(h, dh, dpre, db, relu, accumulate):
    """h, dh (B, H) -> dpre (B, H), db (H) column sums."""
    _rnn_bwd(h, dh, dpre, db, bool(relu), bool(accumulate))




def rnn_recurrence_forward(mode, xproj, w_hh, b_ih, b_hh, hbuf, cbuf, act, reverse):
    """The recurrence over a sequence: per step a GEMM and a fused cell kernel (the loop is
    ``convnet.kernels._recurrence`` loop over this backend's kernels)."""
    import sys

    from ._recurrence import recurrence_forward_loop

    recurrence_forward_loop(sys.modules[__name__], mode, xproj, w_hh, b_ih, b_hh, hbuf, cbuf,
                            act, reverse)


def rnn_recurrence_backward(mode, w_hh, hbuf, cbuf, act, dH, dc, dgx, dgh, dbx, dbh, reverse):
    """Backpropagation through time for :func:`rnn_recurrence_forward`."""
    import sys

    from ._recurrence import recurrence_backward_loop

    recurrence_backward_loop(sys.modules[__name__], mode, w_hh, hbuf, cbuf, act, dH, dc, dgx,
                             dgh, dbx, dbh, reverse)

# upsampling (nearest, bilinear) with PyTorch's coordinate rules (see csrc/cpu/upsample.cpp)
# --------------------------------------------------------------------------------------



def _nearest_table(n_in, n_out, scale):
    """Source index of every output position; float32 arithmetic as PyTorch's, whatever
    the data type (out == in copies, out == 2*in halves exactly)."""
    d = np.arange(n_out)
    if n_out == n_in:
        return d.astype(np.int64)
    if n_out == 2 * n_in:
        return (d >> 1).astype(np.int64)
    step = np.float32(1.0 / scale) if scale > 0 else np.float32(n_in) / np.float32(n_out)
    return np.minimum(np.floor(d.astype(np.float32) * step).astype(np.int64), n_in - 1)


def _linear_table(n_in, n_out, align_corners, scale, dtype):
    """(i0, i1, weight of i0, weight of i1) per output position, in the data's precision."""
    t = np.dtype(dtype).type
    d = np.arange(n_out).astype(dtype)
    if n_out == n_in:
        i = np.arange(n_out, dtype=np.int64)
        return i, i.copy(), np.ones(n_out, dtype), np.zeros(n_out, dtype)
    if align_corners:
        step = t(n_in - 1) / t(n_out - 1) if n_out > 1 else t(0)
        src = step * d
    else:
        step = t(1.0 / scale) if scale > 0 else t(n_in) / t(n_out)
        src = np.maximum(step * (d + t(0.5)) - t(0.5), t(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    lam = np.clip(src - i0.astype(dtype), t(0), t(1)).astype(dtype)
    i1 = i0 + (i0 < n_in - 1)
    return i0, i1, (t(1) - lam).astype(dtype), lam


@_parallel
def _upsample_nearest_fwd(x3, y3, w_in, q_out, rows, cols):
    """Per plane: y[p, q] = x[rows[p], cols[q]]; x3 (NC, H*W), y3 (NC, P*Q)."""
    planes = x3.shape[0]
    p_out = rows.shape[0]
    for pl in prange(planes):
        xp = x3[pl]
        yp = y3[pl]
        for p in range(p_out):
            base = rows[p] * w_in
            for q in range(q_out):
                yp[p * q_out + q] = xp[base + cols[q]]


@_parallel
def _upsample_nearest_bwd(dy3, dx3, w_in, q_out, rows, cols):
    """Per plane: dx = 0; dx[rows[p], cols[q]] += dy[p, q]."""
    planes, hw = dx3.shape
    p_out = rows.shape[0]
    for pl in prange(planes):
        dxp = dx3[pl]
        dyp = dy3[pl]
        for j in range(hw):
            dxp[j] = 0.0
        for p in range(p_out):
            base = rows[p] * w_in
            for q in range(q_out):
                dxp[base + cols[q]] += dyp[p * q_out + q]


@_parallel
def _upsample_bilinear_fwd(x3, y3, w_in, q_out, r0, r1, rl0, rl1, c0, c1, cl0, cl1):
    """Per plane: y[p, q] = sum of the four source pixels with their bilinear weights."""
    planes = x3.shape[0]
    p_out = r0.shape[0]
    for pl in prange(planes):
        xp = x3[pl]
        yp = y3[pl]
        for p in range(p_out):
            a0 = r0[p] * w_in
            a1 = r1[p] * w_in
            h0 = rl0[p]
            h1 = rl1[p]
            for q in range(q_out):
                b0 = c0[q]
                b1 = c1[q]
                w0 = cl0[q]
                w1 = cl1[q]
                yp[p * q_out + q] = (h0 * (w0 * xp[a0 + b0] + w1 * xp[a0 + b1])
                                     + h1 * (w0 * xp[a1 + b0] + w1 * xp[a1 + b1]))


@_parallel
def _upsample_bilinear_bwd(dy3, dx3, w_in, q_out, r0, r1, rl0, rl1, c0, c1, cl0, cl1):
    """Per plane: dx = 0, then each dy value adds to its four source pixels."""
    planes, hw = dx3.shape
    p_out = r0.shape[0]
    for pl in prange(planes):
        dxp = dx3[pl]
        dyp = dy3[pl]
        for j in range(hw):
            dxp[j] = 0.0
        for p in range(p_out):
            a0 = r0[p] * w_in
            a1 = r1[p] * w_in
            h0 = rl0[p]
            h1 = rl1[p]
            for q in range(q_out):
                b0 = c0[q]
                b1 = c1[q]
                d = dyp[p * q_out + q]
                dxp[a0 + b0] += h0 * cl0[q] * d
                dxp[a0 + b1] += h0 * cl1[q] * d
                dxp[a1 + b0] += h1 * cl0[q] * d
                dxp[a1 + b1] += h1 * cl1[q] * d


def _planes(a):
    n, c, h, w = a.shape
    return a.reshape(n * c, h * w)


def upsample_nearest2d_forward(x, y, scale_h, scale_w):
    """x (N, C, H, W) -> y (N, C, P, Q), in place; scale_h/w: the scale factors given, or
    <= 0 when the output size was (the step is then H/P, W/Q)."""
    _, _, h, w_in = x.shape
    p_out, q_out = y.shape[2], y.shape[3]
    rows = _nearest_table(h, p_out, float(scale_h))
    cols = _nearest_table(w_in, q_out, float(scale_w))
    _upsample_nearest_fwd(_planes(x), _planes(y), int(w_in), int(q_out), rows, cols)


def upsample_nearest2d_backward(dy, dx, scale_h, scale_w):
    """dy (N, C, P, Q) -> dx (N, C, H, W), in place (zero-filled, then accumulated)."""
    _, _, h, w_in = dx.shape
    p_out, q_out = dy.shape[2], dy.shape[3]
    rows = _nearest_table(h, p_out, float(scale_h))
    cols = _nearest_table(w_in, q_out, float(scale_w))
    _upsample_nearest_bwd(_planes(dy), _planes(dx), int(w_in), int(q_out), rows, cols)


def _bilinear_tables(x_shape, y_shape, align_corners, scale_h, scale_w, dtype):
    rows = _linear_table(x_shape[2], y_shape[2], bool(align_corners), float(scale_h), dtype)
    cols = _linear_table(x_shape[3], y_shape[3], bool(align_corners), float(scale_w), dtype)
    return (*rows, *cols)


def upsample_bilinear2d_forward(x, y, align_corners, scale_h, scale_w):
    """x (N, C, H, W) -> y (N, C, P, Q), in place."""
    tables = _bilinear_tables(x.shape, y.shape, align_corners, scale_h, scale_w, x.dtype)
    _upsample_bilinear_fwd(_planes(x), _planes(y), int(x.shape[3]), int(y.shape[3]), *tables)


def upsample_bilinear2d_backward(dy, dx, align_corners, scale_h, scale_w):
    """dy (N, C, P, Q) -> dx (N, C, H, W), in place (zero-filled, then accumulated)."""
    tables = _bilinear_tables(dx.shape, dy.shape, align_corners, scale_h, scale_w, dy.dtype)
    _upsample_bilinear_bwd(_planes(dy), _planes(dx), int(dx.shape[3]), int(dy.shape[3]),
                           *tables)


# The fused epilogues: the product, then the activation kernel in place.
import sys as _sys  # noqa: E402

from ._epilogue import composed as _composed  # noqa: E402

conv2d_forward_act, linear_forward_act = _composed(_sys.modules[__name__])
