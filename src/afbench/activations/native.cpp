// Hand-written CPU loops for the kernels whose shape Inductor's loops serve badly (see native.py):
// ACON-C, whose backward pass sums three parameter gradients per channel, and GEGLU, whose backward
// pass writes both halves of one input gradient. Plain C++ with GCC/Clang vector extensions: eight
// float32 lanes, which -march=native makes AVX2 registers where the CPU has them.
//
// Each exported function splits its rows into `blocks` blocks, one per OpenMP thread: torch's own
// libgomp (same soname, already loaded), so the threads are torch's intra-op threads, not more.
// Reductions add into `sums` (double, one set per block), which the caller zeroes.

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <vector>

namespace {

constexpr int64_t W = 8;  // lanes
typedef float vf __attribute__((vector_size(W * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(W * sizeof(int32_t))));
typedef uint32_t vu __attribute__((vector_size(W * sizeof(uint32_t))));

inline vf splat(float a) { return vf{} + a; }
inline vf load(const float* p) { vf v; std::memcpy(&v, p, sizeof v); return v; }
inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
inline vf load_part(const float* p, int64_t k) { vf v = {}; std::memcpy(&v, p, k * sizeof(float)); return v; }
inline void store_part(float* p, vf v, int64_t k) { std::memcpy(p, &v, k * sizeof(float)); }
inline vf select(vi mask, vf a, vf b) { return (vf)(((vi)a & mask) | ((vi)b & ~mask)); }
inline vf vabs(vf x) { return (vf)((vu)x & 0x7fffffffu); }

double hsum(vf v) {
    double s = 0.0;
    for (int64_t i = 0; i < W; ++i) s += v[i];
    return s;
}

// e^y for y <= 88 (0 below -88; NaN stays NaN), cheaper than kernels.exp: one reduction step,
// y = n ln 2 + r with r from one fused multiply-add (float32's ln 2 is 1.9e-9 off, which puts
// |n| 1.9e-9 into r: below 5e-8 for y >= -20), and e^r by the minimax polynomial of degree 5
// (relative error 1.05e-7, scripts/fit_polynomials.py). 2^n built in the exponent
// bits. Every caller multiplies the result into a term, so 1-3 ulp is what float32 gives anyway.
constexpr float EXP[4] = {AFBENCH_EXP};  // from native.py, as LOG1P below

inline vf exp_fast(vf y) {
    y = select(y < -88.0f, splat(-88.0f), y);
    const vf magic = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
    vf n = (y * 1.44269504088896341f + magic) - magic;
    vf r = y - n * 0.693147182464599609f;
    vf r2 = r * r;
    vf p = (1.0f + r) + r2 * ((EXP[0] + r * EXP[1]) + r2 * (EXP[2] + r * EXP[3]));
    vu bits = ((vu)__builtin_convertvector(n, vi) + 127u) << 23;
    return p * (vf)bits;
}

inline vf sigmoid(vf z) {
    vf u = exp_fast(-vabs(z));
    return select(z >= 0.0f, splat(1.0f), u) / (1.0f + u);
}

// erf(z) for z >= 0 in two pieces, given e = e^(-z^2), which the callers need too:
// erfc(z) by Abramowitz and Stegun 7.1.26 (absolute error < 1.5e-7), used from z = 0.5 on,
// and below it erf(z) by its Taylor series to z^11 (relative error < 3e-8), so small values
// keep their relative precision.
inline vf erfc_from(vf z, vf e) {
    vf t = 1.0f / (1.0f + 0.3275911f * z);
    vf t2 = t * t;
    return e * (t * ((0.254829592f - 0.284496736f * t) + t2 * ((1.421413741f - 1.453152027f * t) + t2 * 1.061405429f)));
}

inline vf erf_series(vf z) {
    vf z2 = z * z;
    vf z4 = z2 * z2;
    return 1.1283791670955126f * z  // 2 / sqrt(pi)
           * (((1.0f - z2 * (1.0f / 3)) + z4 * (1.0f / 10 - z2 * (1.0f / 42)))
              + z4 * z4 * (1.0f / 216 - z2 * (1.0f / 1320)));
}

// log(1 + u) for u in [0, 1]: u P(2u - 1), P fitted by scripts/fit_polynomials.py (relative error
// 3.0e-8); native.py passes the coefficients in at build time, from the one copy kernels.py uses.
constexpr float LOG1P[9] = {AFBENCH_LOG1P};

inline vf log1p_unit(vf u) {
    vf t = 2.0f * u - 1.0f;
    vf t2 = t * t;
    vf t4 = t2 * t2;
    return u * (((LOG1P[0] + LOG1P[1] * t) + t2 * (LOG1P[2] + LOG1P[3] * t))
                + t4 * (((LOG1P[4] + LOG1P[5] * t) + t2 * (LOG1P[6] + LOG1P[7] * t)) + t4 * LOG1P[8]));
}

// ---- ACON-C: (p1 - p2) x sigmoid(beta (p1 - p2) x) + p2 x on (rows, channels, inner) ----------------

inline vf acon_value(vf x, vf p1, vf p2, vf beta) {
    vf dx = (p1 - p2) * x;
    return dx * sigmoid(beta * dx) + p2 * x;
}

// The input's gradient, and the parameters' per-element gradients added into (a1, a2, a3).
inline vf acon_grads(vf grad, vf x, vf p1, vf p2, vf beta, vf& a1, vf& a2, vf& a3) {
    vf d = p1 - p2;
    vf dx = d * x;
    vf z = beta * dx;
    vf s = sigmoid(z);
    vf ss = s * (1.0f - s);
    vf g = s + z * ss;  // d(dx sigmoid(beta dx)) / d(dx)
    vf gx = grad * x;
    a1 += gx * g;
    a2 += gx * (1.0f - g);  // summed as it is, not as sum(gx) - dL/dp1, which cancels
    a3 += grad * dx * dx * ss;
    return grad * (d * g + p2);
}

}  // namespace

namespace {

// y = ACON-C(x); p1, p2, beta: one value per channel.
void acon_c_forward_rows(const float* x, float* y, const float* p1, const float* p2, const float* beta,
                    int64_t rows, int64_t channels, int64_t inner) {
    if (inner == 1) {  // (rows, channels): lanes across channels
        int64_t full = channels - channels % W, k = channels - full;
        for (int64_t n = 0; n < rows; ++n) {
            const float* xr = x + n * channels;
            float* yr = y + n * channels;
            for (int64_t c = 0; c < full; c += W)
                store(yr + c, acon_value(load(xr + c), load(p1 + c), load(p2 + c), load(beta + c)));
            if (k)
                store_part(yr + full, acon_value(load_part(xr + full, k), load_part(p1 + full, k),
                                                 load_part(p2 + full, k), load_part(beta + full, k)), k);
        }
        return;
    }
    int64_t full = inner - inner % W, k = inner - full;  // lanes along each channel's inner positions
    for (int64_t n = 0; n < rows; ++n)
        for (int64_t c = 0; c < channels; ++c) {
            const float* xr = x + (n * channels + c) * inner;
            float* yr = y + (n * channels + c) * inner;
            vf a = splat(p1[c]), b = splat(p2[c]), e = splat(beta[c]);
            for (int64_t l = 0; l < full; l += W) store(yr + l, acon_value(load(xr + l), a, b, e));
            if (k) store_part(yr + full, acon_value(load_part(xr + full, k), a, b, e), k);
        }
}

// gx = dL/dx (skipped when gx is null); sums[0:C], [C:2C], [2C:3C] += dL/dp1, dL/dp2, dL/dbeta, in
// double: a sum over a million rows in float32 drifts by 1e-3 (each row's terms are added in float
// for at most FLUSH_ROWS rows or one channel's inner positions, then into the double totals).
void acon_c_backward_rows(const float* grad, const float* x, const float* p1, const float* p2, const float* beta,
                     float* gx, double* sums, int64_t rows, int64_t channels, int64_t inner) {
    double* s1 = sums;
    double* s2 = sums + channels;
    double* s3 = sums + 2 * channels;
    if (inner == 1) {  // per-channel sums as lanes, kept in `part` (channels x 12 bytes: in cache)
        constexpr int64_t FLUSH_ROWS = 32;
        std::vector<float> part(3 * channels, 0.0f);
        float* q1 = part.data();
        float* q2 = q1 + channels;
        float* q3 = q2 + channels;
        int64_t full = channels - channels % W, k = channels - full;
        for (int64_t n = 0; n < rows; ++n) {
            const float* gr = grad + n * channels;
            const float* xr = x + n * channels;
            for (int64_t c = 0; c < full; c += W) {
                vf a1 = load(q1 + c), a2 = load(q2 + c), a3 = load(q3 + c);
                vf g = acon_grads(load(gr + c), load(xr + c), load(p1 + c), load(p2 + c), load(beta + c),
                                  a1, a2, a3);
                if (gx) store(gx + n * channels + c, g);
                store(q1 + c, a1), store(q2 + c, a2), store(q3 + c, a3);
            }
            if (k) {  // zero-padded lanes have grad 0: they add nothing
                vf a1 = load_part(q1 + full, k), a2 = load_part(q2 + full, k), a3 = load_part(q3 + full, k);
                vf g = acon_grads(load_part(gr + full, k), load_part(xr + full, k), load_part(p1 + full, k),
                                  load_part(p2 + full, k), load_part(beta + full, k), a1, a2, a3);
                if (gx) store_part(gx + n * channels + full, g, k);
                store_part(q1 + full, a1, k), store_part(q2 + full, a2, k), store_part(q3 + full, a3, k);
            }
            if ((n + 1) % FLUSH_ROWS == 0 || n + 1 == rows) {
                for (int64_t i = 0; i < 3 * channels; ++i) sums[i] += part[i];
                std::fill(part.begin(), part.end(), 0.0f);
            }
        }
        return;
    }
    int64_t full = inner - inner % W, k = inner - full;
    for (int64_t n = 0; n < rows; ++n)
        for (int64_t c = 0; c < channels; ++c) {
            int64_t at = (n * channels + c) * inner;
            vf a = splat(p1[c]), b = splat(p2[c]), e = splat(beta[c]);
            vf a1 = {}, a2 = {}, a3 = {};
            for (int64_t l = 0; l < full; l += W) {
                vf g = acon_grads(load(grad + at + l), load(x + at + l), a, b, e, a1, a2, a3);
                if (gx) store(gx + at + l, g);
            }
            if (k) {
                vf g = acon_grads(load_part(grad + at + full, k), load_part(x + at + full, k), a, b, e, a1, a2, a3);
                if (gx) store_part(gx + at + full, g, k);
            }
            s1[c] += hsum(a1), s2[c] += hsum(a2), s3[c] += hsum(a3);
        }
}

}  // namespace

// ---- GEGLU: gelu(a) b, a and b the two halves of each row -------------------------------------------

namespace {

// Phi(a), the normal CDF, and phi(a), its density, through erf(z), z = |a| / sqrt 2; in the
// negative tail Phi is erfc / 2 itself, not 1 - erf.
inline void normal_cdf_pdf(vf a, vf& cdf, vf& pdf) {
    vf z = vabs(a) * 0.70710678118654752f;
    vf e = exp_fast(-(z * z));  // e^(-a^2 / 2)
    vf upper = 0.5f * erfc_from(z, e);
    vf half_erf = 0.5f * erf_series(z);
    vi small = z < 0.5f, positive = a >= 0.0f;
    vf above = select(small, 0.5f + half_erf, 1.0f - upper);  // Phi(|a|)
    vf below = select(small, 0.5f - half_erf, upper);         // Phi(-|a|)
    cdf = select(positive, above, below);
    pdf = e * 0.39894228040143268f;  // 1 / sqrt(2 pi)
}

// serf(x) = x erf(softplus(x)) and its derivative erf(sp) + x (2 / sqrt pi) e^(-sp^2) sigmoid(x).
inline vf serf(vf x, vf* slope) {
    vi positive = x >= 0.0f;
    vf u = exp_fast(-vabs(x));
    vf sp = select(positive, x, splat(0.0f)) + log1p_unit(u);
    vf e = exp_fast(-(sp * sp));
    vf erf = select(sp < 0.5f, erf_series(sp), 1.0f - erfc_from(sp, e));
    if (slope) {
        vf s = select(positive, splat(1.0f), u) / (1.0f + u);
        *slope = erf + 1.1283791670955126f * x * s * e;
    }
    return x * erf;
}

// tanh(z) and sech^2(z) = 1 - tanh^2 from u = e^(-2|z|): tanh = -expm1(-2|z|) / (1 + u), odd, and
// sech^2 = 4u / (1 + u)^2, with no cancellation near |tanh| = 1. expm1(y) by its Taylor series to
// y^8 where |y| <= 1/2 (relative error < 2e-8), as e^y - 1 beyond, where nothing cancels.
inline void tanh_sech2(vf z, vf& t, vf& sech2) {
    vf y = -2.0f * vabs(z);
    vf u = exp_fast(y);
    vf y2 = y * y;
    vf y4 = y2 * y2;
    vf series = y + y2 * (0.5f + y * (1.0f / 6)) + y4 * ((1.0f / 24 + y * (1.0f / 120))
                                                        + y2 * (1.0f / 720 + y * (1.0f / 5040)) + y4 * (1.0f / 40320));
    vf m = select(y >= -0.5f, series, u - 1.0f);
    vf r = 1.0f / (1.0f + u);
    vf magnitude = -m * r;
    t = (vf)(((vu)magnitude & 0x7fffffffu) | ((vu)z & 0x80000000u));  // copysign(magnitude, z)
    sech2 = 4.0f * u * r * r;
}

// lisht(x) = x tanh(x); derivative tanh(x) + x sech^2(x).
inline vf lisht(vf x, vf* slope) {
    vf t, sech2;
    tanh_sech2(x, t, sech2);
    if (slope) *slope = t + x * sech2;
    return x * t;
}

// tanhshrink(x) = x - tanh(x), which cancels for small x: there its odd series to x^15 (relative
// error < 1.2e-7 at 1/2); derivative tanh^2(x).
inline vf tanhshrink(vf x, vf* slope) {
    vf t, sech2;
    tanh_sech2(x, t, sech2);
    vf z = x * x;
    vf z2 = z * z;
    vf series = x * z * ((1.0f / 3 - z * (2.0f / 15)) + z2 * (17.0f / 315 - z * (62.0f / 2835))
                         + z2 * z2 * ((1382.0f / 155925 - z * (21844.0f / 6081075)) + z2 * (929569.0f / 638512875)));
    if (slope) *slope = t * t;
    return select(vabs(x) < 0.5f, series, x - t);
}

// tanhexp(x) = x tanh(e^x) and its derivative tanh(e^x) + x e^x sech^2(e^x). For e = e^x > 0,
// tanh(e) = (1 - u) / (1 + u) with u = e^(-2e), which cancels for e <= 1/4: there tanh's series to
// e^9 (relative error < 1e-8). e^20 already makes tanh 1 in float64: no overflow.
inline vf tanhexp(vf x, vf* slope) {
    vf e = exp_fast(select(x > 20.0f, splat(20.0f), x));
    vf u = exp_fast(-2.0f * e);
    vf r = 1.0f / (1.0f + u);
    vf z = e * e;
    vf series = e * ((1.0f - z * (1.0f / 3)) + z * z * ((2.0f / 15 - z * (17.0f / 315)) + z * z * (62.0f / 2835)));
    vf t = select(e <= 0.25f, series, (1.0f - u) * r);
    if (slope) *slope = t + x * e * (4.0f * u * r * r);
    return x * t;
}

}  // namespace

namespace {

// x: rows of [a (half), b (half)]; y: rows of half.
void geglu_forward_rows(const float* x, float* y, int64_t rows, int64_t half) {
    int64_t full = half - half % W, k = half - full;
    for (int64_t n = 0; n < rows; ++n) {
        const float* a = x + n * 2 * half;
        const float* b = a + half;
        float* yr = y + n * half;
        vf cdf, pdf;
        for (int64_t j = 0; j < full; j += W) {
            vf av = load(a + j);
            normal_cdf_pdf(av, cdf, pdf);
            store(yr + j, av * cdf * load(b + j));
        }
        if (k) {
            vf av = load_part(a + full, k);
            normal_cdf_pdf(av, cdf, pdf);
            store_part(yr + full, av * cdf * load_part(b + full, k), k);
        }
    }
}

// gx rows: [grad b gelu'(a), grad gelu(a)], gelu'(a) = Phi(a) + a phi(a).
void geglu_backward_rows(const float* grad, const float* x, float* gx, int64_t rows, int64_t half) {
    int64_t full = half - half % W, k = half - full;
    for (int64_t n = 0; n < rows; ++n) {
        const float* a = x + n * 2 * half;
        const float* b = a + half;
        const float* gr = grad + n * half;
        float* ga = gx + n * 2 * half;
        float* gb = ga + half;
        vf cdf, pdf;
        for (int64_t j = 0; j < full; j += W) {
            vf av = load(a + j), g = load(gr + j);
            normal_cdf_pdf(av, cdf, pdf);
            store(ga + j, g * load(b + j) * (cdf + av * pdf));
            store(gb + j, g * av * cdf);
        }
        if (k) {
            vf av = load_part(a + full, k), g = load_part(gr + full, k);
            normal_cdf_pdf(av, cdf, pdf);
            store_part(ga + full, g * load_part(b + full, k) * (cdf + av * pdf), k);
            store_part(gb + full, g * av * cdf, k);
        }
    }
}

}  // namespace

// ---- elementwise (f, f') loops: y = f(x), and slope = f'(x) when slope is not null -------------------

namespace {

template <vf (*F)(vf, vf*)>
void elementwise_rows(const float* x, float* y, float* slope, int64_t n) {
    int64_t full = n - n % W, k = n - full;
    vf d;
    for (int64_t i = 0; i < full; i += W) {
        store(y + i, F(load(x + i), slope ? &d : nullptr));
        if (slope) store(slope + i, d);
    }
    if (k) {
        store_part(y + full, F(load_part(x + full, k), slope ? &d : nullptr), k);
        if (slope) store_part(slope + full, d, k);
    }
}

}  // namespace

// ---- 2x2 max pooling, stride 2, on channels-last (N, H, W, C) float32 ----------------------------------
// What torch's channels-last CPU kernel computes, bit for bit: in each window the first maximum in
// row-major order wins (a later value only if greater, or NaN), and the backward pass adds the
// output's gradient into a zeroed input gradient at the winner (0 + g: a gradient of -0 lands as +0,
// as there). The winner is kept as one byte, row * 2 + column, instead of torch's int64 index, and
// the backward pass writes every input position once instead of zeroing them all first.
// Channels go W at a time; a count that is not a multiple of W ends with a chunk overlapping the
// one before (the same lanes computed twice, the same values stored twice); under W, one at a time.

namespace {

typedef uint8_t vb __attribute__((vector_size(W)));

// The chunk starts of c channels: 0, W, 2W, ..., and c - W last when W does not divide c.
template <class Body>
inline void channel_chunks(int64_t c, Body body) {
    int64_t j = 0;
    for (; j + W <= c; j += W) body(j);
    if (j < c) body(c - W);
}

struct Window {
    int64_t top, bottom;  // offsets of the window's rows in the input; columns 2 ow and 2 ow + 1
    int64_t at(int q, int64_t ow, int64_t c) const { return (q < 2 ? top : bottom) + (2 * ow + (q & 1)) * c; }
};

// rows: output rows (n, oh); with H even, output row r reads input rows 2r and 2r + 1.
void max_pool2x2_rows(const float* x, float* y, uint8_t* code, int64_t rows, int64_t w_in, int64_t c) {
    const int64_t w_out = w_in / 2;
    for (int64_t r = 0; r < rows; ++r) {
        const Window window{r * 2 * w_in * c, (r * 2 + 1) * w_in * c};
        for (int64_t ow = 0; ow < w_out; ++ow) {
            const int64_t out = (r * w_out + ow) * c;
            if (c >= W) {
                channel_chunks(c, [&](int64_t j) {
                    vf best = splat(-__builtin_inff());
                    vi which = {};
                    for (int32_t q = 0; q < 4; ++q) {
                        vf v = load(x + window.at(q, ow, c) + j);
                        vi take = (v > best) | (v != v);
                        best = select(take, v, best);
                        which = (take & q) | (~take & which);
                    }
                    store(y + out + j, best);
                    if (code) {
                        vb bytes = __builtin_convertvector(which, vb);
                        std::memcpy(code + out + j, &bytes, W);
                    }
                });
                continue;
            }
            for (int64_t j = 0; j < c; ++j) {
                float best = -__builtin_inff();
                uint8_t which = 0;
                for (int q = 0; q < 4; ++q) {
                    const float v = x[window.at(q, ow, c) + j];
                    if (v > best || v != v) best = v, which = static_cast<uint8_t>(q);
                }
                y[out + j] = best;
                if (code) code[out + j] = which;
            }
        }
    }
}

void max_pool2x2_backward_rows(const float* grad, const uint8_t* code, float* gx, int64_t rows, int64_t w_in,
                               int64_t c) {
    const int64_t w_out = w_in / 2;
    for (int64_t r = 0; r < rows; ++r) {
        const Window window{r * 2 * w_in * c, (r * 2 + 1) * w_in * c};
        for (int64_t ow = 0; ow < w_out; ++ow) {
            const int64_t out = (r * w_out + ow) * c;
            if (c >= W) {
                channel_chunks(c, [&](int64_t j) {
                    const vf value = 0.0f + load(grad + out + j);
                    vb bytes;
                    std::memcpy(&bytes, code + out + j, W);
                    const vi which = __builtin_convertvector(bytes, vi);
                    for (int32_t q = 0; q < 4; ++q)
                        store(gx + window.at(q, ow, c) + j, select(which == q, value, splat(0.0f)));
                });
                continue;
            }
            for (int64_t j = 0; j < c; ++j) {
                const float value = 0.0f + grad[out + j];
                for (int q = 0; q < 4; ++q) gx[window.at(q, ow, c) + j] = code[out + j] == q ? value : 0.0f;
            }
        }
    }
}

}  // namespace

// ---- exported: rows split into blocks, one per OpenMP thread -------------------------------------------

namespace {

template <class Body>
void in_blocks(int64_t rows, int64_t blocks, Body body) {
    if (blocks <= 1) {
        body(0, 0, rows);
        return;
    }
#pragma omp parallel for num_threads(blocks) schedule(static, 1)
    for (int64_t b = 0; b < blocks; ++b) body(b, rows * b / blocks, rows * (b + 1) / blocks);
}

template <vf (*F)(vf, vf*)>
void elementwise(const float* x, float* y, float* slope, int64_t n, int64_t blocks) {
    in_blocks(n, blocks, [&](int64_t, int64_t lo, int64_t hi) {
        elementwise_rows<F>(x + lo, y + lo, slope ? slope + lo : nullptr, hi - lo);
    });
}

}  // namespace

extern "C" {

void acon_c_forward(const float* x, float* y, const float* p1, const float* p2, const float* beta,
                    int64_t rows, int64_t channels, int64_t inner, int64_t blocks) {
    int64_t row = channels * inner;
    in_blocks(rows, blocks, [&](int64_t, int64_t lo, int64_t hi) {
        acon_c_forward_rows(x + lo * row, y + lo * row, p1, p2, beta, hi - lo, channels, inner);
    });
}

void acon_c_backward(const float* grad, const float* x, const float* p1, const float* p2, const float* beta,
                     float* gx, double* sums, int64_t rows, int64_t channels, int64_t inner, int64_t blocks) {
    int64_t row = channels * inner;
    in_blocks(rows, blocks, [&](int64_t b, int64_t lo, int64_t hi) {
        acon_c_backward_rows(grad + lo * row, x + lo * row, p1, p2, beta, gx ? gx + lo * row : nullptr,
                             sums + b * 3 * channels, hi - lo, channels, inner);
    });
}

void geglu_forward(const float* x, float* y, int64_t rows, int64_t half, int64_t blocks) {
    in_blocks(rows, blocks, [&](int64_t, int64_t lo, int64_t hi) {
        geglu_forward_rows(x + lo * 2 * half, y + lo * half, hi - lo, half);
    });
}

void geglu_backward(const float* grad, const float* x, float* gx, int64_t rows, int64_t half, int64_t blocks) {
    in_blocks(rows, blocks, [&](int64_t, int64_t lo, int64_t hi) {
        geglu_backward_rows(grad + lo * half, x + lo * 2 * half, gx + lo * 2 * half, hi - lo, half);
    });
}

// The (f, f') passes: y = f(x), and slope = f'(x) when slope is not null.
void serf_forward(const float* x, float* y, float* slope, int64_t n, int64_t blocks) {
    elementwise<serf>(x, y, slope, n, blocks);
}
void tanhexp_forward(const float* x, float* y, float* slope, int64_t n, int64_t blocks) {
    elementwise<tanhexp>(x, y, slope, n, blocks);
}
void lisht_forward(const float* x, float* y, float* slope, int64_t n, int64_t blocks) {
    elementwise<lisht>(x, y, slope, n, blocks);
}
void tanhshrink_forward(const float* x, float* y, float* slope, int64_t n, int64_t blocks) {
    elementwise<tanhshrink>(x, y, slope, n, blocks);
}

void max_pool2x2_forward(const float* x, float* y, uint8_t* code, int64_t rows, int64_t w_in, int64_t c,
                         int64_t blocks) {
    const int64_t out_row = w_in / 2 * c;
    in_blocks(rows, blocks, [&](int64_t, int64_t lo, int64_t hi) {
        max_pool2x2_rows(x + lo * 2 * w_in * c, y + lo * out_row, code ? code + lo * out_row : nullptr, hi - lo,
                         w_in, c);
    });
}

void max_pool2x2_backward(const float* grad, const uint8_t* code, float* gx, int64_t rows, int64_t w_in, int64_t c,
                          int64_t blocks) {
    const int64_t out_row = w_in / 2 * c;
    in_blocks(rows, blocks, [&](int64_t, int64_t lo, int64_t hi) {
        max_pool2x2_backward_rows(grad + lo * out_row, code + lo * out_row, gx + lo * 2 * w_in * c, hi - lo, w_in, c);
    });
}

}  // extern "C"
