// Runs kernels/train/train.cu on the CPU through host_emulation.h against float64 references
// (the optimizer formulas are those of biolayers::optim; activations, MSE, dropout and max
// pooling those of bioautograd; exact-order results are compared bit for bit). Build and run:
// kernels/emulate/run.sh.

#define KERNELS_HOST_EMULATION 1
#include "../train/train.cu"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

namespace {
uint64_t g_rng = 0x2545F4914F6CDD1Dull;
float rnd() {  // [-1, 1), never 0
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    float v = float((g_rng >> 40) + 0.5) / float(1u << 23) - 1.0f;
    return v == 0.0f ? 0.25f : v;
}
int failures = 0, cases = 0;
void check(const char* what, const std::vector<float>& got, const std::vector<double>& want, double tol) {
    double num = 0, den = 0;
    bool finite = true;
    for (size_t i = 0; i < got.size(); ++i) {
        finite &= std::isfinite(got[i]);
        num += (got[i] - want[i]) * (got[i] - want[i]);
        den += want[i] * want[i];
    }
    double err = std::sqrt(num / (den > 0 ? den : 1));
    bool ok = finite && err < tol;
    ++cases;
    failures += !ok;
    std::printf("%s %-28s rel.err %.2e%s\n", ok ? "PASS" : "FAIL", what, err, finite ? "" : " [NaN left]");
}
unsigned blocks(long long n) { return unsigned((n + NT - 1) / NT); }
// Bit-for-bit equality (NaN equals NaN), for results whose operation order is fixed.
template <class T>
void check_exact(const char* what, const std::vector<T>& got, const std::vector<T>& want) {
    size_t bad = got.size() == want.size() ? 0 : 1;
    for (size_t i = 0; i < got.size() && i < want.size(); ++i)
        bad += memcmp(&got[i], &want[i], sizeof(T)) != 0;
    ++cases;
    failures += bad != 0;
    std::printf("%s %-28s %zu of %zu differ\n", bad == 0 ? "PASS" : "FAIL", what, bad, want.size());
}
std::vector<float> rnd_vec(size_t n, float scale = 1.f) {
    std::vector<float> v(n);
    for (auto& x : v) x = scale * rnd();
    return v;
}
double sigmoid_ref(double v) { return 1.0 / (1.0 + std::exp(-v)); }

// The CPU bioautograd max_pool2d (valid padding), in float: y, argmax, and the backward scatter.
void max_pool_ref(const std::vector<float>& x, int planes, int h, int w, int kh, int kw, int sh, int sw, int ph,
                  int pw, std::vector<float>& y, std::vector<int>& arg) {
    const int oh = (h + 2 * ph - kh) / sh + 1, ow = (w + 2 * pw - kw) / sw + 1;
    y.assign(size_t(planes) * oh * ow, 0.f);
    arg.assign(y.size(), -1);
    for (int p = 0; p < planes; ++p)
        for (int i = 0; i < oh; ++i)
            for (int j = 0; j < ow; ++j) {
                float best = -INFINITY;
                long best_at = -1;
                for (int di = 0; di < kh; ++di)
                    for (int dj = 0; dj < kw; ++dj) {
                        const int r = i * sh + di - ph, c = j * sw + dj - pw;
                        if (r < 0 || r >= h || c < 0 || c >= w) continue;
                        long at = (long(p) * h + r) * w + c;
                        if (best_at < 0 || x[at] > best) {
                            best = x[at];
                            best_at = at;
                        }
                    }
                size_t o = (size_t(p) * oh + i) * ow + j;
                y[o] = best;
                arg[o] = int(best_at);
            }
}

// The CPU avg_pool2d (padding counted in the divisor) and its backward scatter, in float.
void avg_pool_ref(const std::vector<float>& x, const std::vector<float>& g, int planes, int h, int w, int kh, int kw,
                  int sh, int sw, int ph, int pw, std::vector<float>& y, std::vector<float>& dx) {
    const int oh = (h + 2 * ph - kh) / sh + 1, ow = (w + 2 * pw - kw) / sw + 1;
    const float inv = 1.f / float(kh * kw);
    y.assign(size_t(planes) * oh * ow, 0.f);
    dx.assign(x.size(), 0.f);
    for (int p = 0; p < planes; ++p)
        for (int i = 0; i < oh; ++i)
            for (int j = 0; j < ow; ++j) {
                const size_t o = (size_t(p) * oh + i) * ow + j;
                float sum = 0.f;
                const float gv = g[o] * inv;
                for (int di = 0; di < kh; ++di)
                    for (int dj = 0; dj < kw; ++dj) {
                        const int r = i * sh + di - ph, c = j * sw + dj - pw;
                        if (r < 0 || r >= h || c < 0 || c >= w) continue;
                        sum += x[(size_t(p) * h + r) * w + c];
                        dx[(size_t(p) * h + r) * w + c] += gv;
                    }
                y[o] = sum * inv;
            }
}

// Elementwise ops, reductions, MSE, dropout and max pooling (the GPU training path of the
// schizo-cifar CNN and the bio-RNN) against float64 replicas or bit-exact float replicas.
void new_kernels() {
    // Grids smaller than n / NT exercise the grid-stride loops; sizes are ragged.
    const int n = 1237;
    const unsigned small_grid = 2;
    const auto x = rnd_vec(n, 8.f), dy = rnd_vec(n), dx0 = rnd_vec(n);
    const char* names[4] = {"relu", "tanh", "sigmoid", "swish"};
    for (int op = 0; op < 4; ++op) {
        std::vector<float> y(n, NAN), dxz(n, NAN), dxo = dx0;
        emu::launch(EmuDim3{small_grid, 1, 1}, NT, [&] { unary_fwd(x.data(), y.data(), n, op); });
        const std::vector<float>& saved = op == 0 || op == 3 ? x : y;
        emu::launch(EmuDim3{small_grid, 1, 1}, NT, [&] { unary_bwd(saved.data(), dy.data(), dxz.data(), n, op, 0.f); });
        emu::launch(EmuDim3{blocks(n), 1, 1}, NT, [&] { unary_bwd(saved.data(), dy.data(), dxo.data(), n, op, 1.f); });
        std::vector<double> wy(n), wdx(n), wdxo(n);
        for (int i = 0; i < n; ++i) {
            double v = x[i];
            const double sg = sigmoid_ref(v);
            wy[i] = op == 0 ? (v > 0 ? v : 0) : (op == 1 ? std::tanh(v) : (op == 3 ? v * sg : sg));
            double d = op == 0 ? (v > 0 ? 1 : 0)
                               : (op == 1 ? 1 - wy[i] * wy[i] : (op == 3 ? sg + v * sg * (1 - sg) : sg * (1 - sg)));
            wdx[i] = dy[i] * d;
            wdxo[i] = dx0[i] + wdx[i];
        }
        char name[64];
        std::snprintf(name, sizeof name, "unary_fwd %s", names[op]);
        check(name, y, wy, 1e-6);
        std::snprintf(name, sizeof name, "unary_bwd %s beta=0", names[op]);
        check(name, dxz, wdx, 1e-5);
        std::snprintf(name, sizeof name, "unary_bwd %s beta=1", names[op]);
        check(name, dxo, wdxo, 1e-5);
    }
    {
        // sign(a - b) for the mean absolute error, ties included.
        auto a = rnd_vec(n), b = rnd_vec(n);
        for (int i = 0; i < n; i += 5) b[i] = a[i];
        std::vector<float> sgn(n, NAN);
        std::vector<double> want(n);
        emu::launch(EmuDim3{small_grid, 1, 1}, NT, [&] { sign_diff(a.data(), b.data(), sgn.data(), n); });
        for (int i = 0; i < n; ++i) want[i] = a[i] > b[i] ? 1 : (a[i] < b[i] ? -1 : 0);
        check("sign_diff", sgn, want, 0.0 + 1e-12);
    }
    {
        // LeakyReLU with the GAN discriminator's slope.
        const float slope = 0.2f;
        std::vector<float> y(n, NAN), dxz(n, NAN), dxo = dx0;
        emu::launch(EmuDim3{small_grid, 1, 1}, NT, [&] { leaky_relu_fwd(x.data(), y.data(), n, slope); });
        emu::launch(EmuDim3{small_grid, 1, 1}, NT,
                    [&] { leaky_relu_bwd(x.data(), dy.data(), dxz.data(), n, slope, 0.f); });
        emu::launch(EmuDim3{blocks(n), 1, 1}, NT, [&] { leaky_relu_bwd(x.data(), dy.data(), dxo.data(), n, slope, 1.f); });
        std::vector<double> wy(n), wdx(n), wdxo(n);
        for (int i = 0; i < n; ++i) {
            const double v = x[i], d = v > 0 ? 1.0 : double(slope);
            wy[i] = v * d;
            wdx[i] = dy[i] * d;
            wdxo[i] = dx0[i] + wdx[i];
        }
        check("leaky_relu_fwd", y, wy, 1e-6);
        check("leaky_relu_bwd beta=0", dxz, wdx, 1e-6);
        check("leaky_relu_bwd beta=1", dxo, wdxo, 1e-6);
    }
    {
        const auto a = rnd_vec(n), b = rnd_vec(n);
        const char* bn[3] = {"binary_ew add", "binary_ew sub", "binary_ew mul"};
        for (int op = 0; op < 3; ++op) {
            std::vector<float> out(n, NAN);
            emu::launch(EmuDim3{small_grid, 1, 1}, NT, [&] { binary_ew(a.data(), b.data(), out.data(), n, op); });
            std::vector<double> want(n);
            for (int i = 0; i < n; ++i)
                want[i] = op == 0 ? double(a[i]) + b[i] : (op == 1 ? double(a[i]) - b[i] : double(a[i]) * b[i]);
            check(bn[op], out, want, 1e-7);
        }
        std::vector<float> y0(n, NAN), y1 = b, f(n, NAN);
        emu::launch(EmuDim3{small_grid, 1, 1}, NT, [&] { axpby(a.data(), y0.data(), n, -1.5f, 0.f); });
        emu::launch(EmuDim3{blocks(n), 1, 1}, NT, [&] { axpby(a.data(), y1.data(), n, 0.25f, 0.5f); });
        emu::launch(EmuDim3{small_grid, 1, 1}, NT, [&] { fill_f32(f.data(), n, -3.5f); });
        std::vector<double> w0(n), w1(n), wf(n, -3.5);
        for (int i = 0; i < n; ++i) {
            w0[i] = -1.5 * a[i];
            w1[i] = 0.25 * a[i] + 0.5 * b[i];
        }
        check("axpby beta=0 (y NaN)", y0, w0, 1e-7);
        check("axpby beta=0.5", y1, w1, 1e-7);
        check("fill_f32", f, wf, 0.0 + 1e-12);
        // dropout: mask from the host, result bit-identical to the CPU's x * (keep ? scale : 0)
        std::vector<float> mask(n), yd(n, NAN), want(n);
        const float scale = float(1.0 / (1.0 - 0.3));
        for (int i = 0; i < n; ++i) {
            mask[i] = rnd() < 0.4f ? 1.f : 0.f;
            want[i] = a[i] * (mask[i] != 0.f ? scale : 0.f);
        }
        emu::launch(EmuDim3{small_grid, 1, 1}, NT, [&] { dropout_apply(a.data(), mask.data(), yd.data(), n, scale); });
        check_exact("dropout_apply (bit-exact)", yd, want);
        // MSE: loss (one CTA) and gradient (grid-stride)
        std::vector<float> loss(1, NAN), d(n, NAN);
        const float gs = 1.0f / n;
        emu::launch(EmuDim3{small_grid, 1, 1}, NT, [&] { mse_grad(a.data(), b.data(), d.data(), n, gs); });
        emu::launch(EmuDim3{1, 1, 1}, NT, [&] { mse_loss(a.data(), b.data(), loss.data(), n); });
        std::vector<double> wl(1, 0.0), wd(n);
        for (int i = 0; i < n; ++i) {
            double e = double(a[i]) - b[i];
            wl[0] += e * e / n;
            wd[i] = 2 * e / n;
        }
        check("mse_loss", loss, wl, 1e-6);
        check("mse_grad", d, wd, 1e-6);
    }
    // copy_cols: a 37 x 5 block from column 11 of a 37 x 23 matrix into column 3 of a 37 x 9 one
    // (beta 0: the block replaced, the rest untouched) and added back (beta 1).
    {
        const int rows = 37, sld = 23, dld = 9, sc = 11, dc = 3, cols = 5;
        const auto src = rnd_vec(size_t(rows) * sld), dst0 = rnd_vec(size_t(rows) * dld);
        std::vector<float> d0 = dst0, d1 = dst0;
        for (int r = 0; r < rows; ++r)
            for (int j = 0; j < cols; ++j) d0[size_t(r) * dld + dc + j] = NAN;
        emu::launch(EmuDim3{small_grid - 1, 1, 1}, NT,
                    [&] { copy_cols(src.data(), d0.data(), rows, sld, sc, dld, dc, cols, 0.f); });
        emu::launch(EmuDim3{1, 1, 1}, NT, [&] { copy_cols(src.data(), d1.data(), rows, sld, sc, dld, dc, cols, 1.f); });
        std::vector<float> w0 = dst0, w1 = dst0;
        for (int r = 0; r < rows; ++r)
            for (int j = 0; j < cols; ++j) {
                w0[size_t(r) * dld + dc + j] = src[size_t(r) * sld + sc + j];
                w1[size_t(r) * dld + dc + j] += src[size_t(r) * sld + sc + j];
            }
        check_exact("copy_cols beta=0", d0, w0);
        check_exact("copy_cols beta=1", d1, w1);
    }
    // Reductions: ragged sizes, NaN-poisoned outputs, beta = 1 accumulation, and the same bits
    // on a second run (fixed order).
    {
        const int big = 100003;
        const auto v = rnd_vec(big);
        std::vector<float> s1(1, NAN), s2(1, NAN), s0(1, NAN);
        emu::launch(EmuDim3{1, 1, 1}, NT, [&] { sum_all(v.data(), s1.data(), big); });
        emu::launch(EmuDim3{1, 1, 1}, NT, [&] { sum_all(v.data(), s2.data(), big); });
        emu::launch(EmuDim3{1, 1, 1}, NT, [&] { sum_all(v.data(), s0.data(), 0); });
        std::vector<double> ws(1, 0.0);
        for (float e : v) ws[0] += e;
        check("sum_all n=100003", s1, ws, 1e-5);
        check_exact("sum_all deterministic", s2, s1);
        check("sum_all n=0", s0, std::vector<double>{0.0}, 1e-12);
        const int shapes[2][2] = {{77, 300}, {1000, 10}};
        for (const auto& sh : shapes) {
            const int rows = sh[0], cols = sh[1];
            const auto m = rnd_vec(size_t(rows) * cols), o0 = rnd_vec(cols);
            std::vector<float> z(cols, NAN), z2(cols, NAN), acc = o0;
            // grid 2 < ceil(cols / 32) for 300 columns: the CTAs loop over column blocks
            emu::launch(EmuDim3{2, 1, 1}, NT, [&] { sum_rows(m.data(), z.data(), rows, cols, 0.f); });
            emu::launch(EmuDim3{unsigned((cols + 31) / 32), 1, 1}, NT,
                        [&] { sum_rows(m.data(), z2.data(), rows, cols, 0.f); });
            emu::launch(EmuDim3{1, 1, 1}, NT, [&] { sum_rows(m.data(), acc.data(), rows, cols, 1.f); });
            std::vector<double> wz(cols, 0.0), wacc(cols);
            for (int r = 0; r < rows; ++r)
                for (int c = 0; c < cols; ++c) wz[c] += m[size_t(r) * cols + c];
            for (int c = 0; c < cols; ++c) wacc[c] = o0[c] + wz[c];
            char name[64];
            std::snprintf(name, sizeof name, "sum_rows %dx%d beta=0", rows, cols);
            check(name, z, wz, 1e-5);
            std::snprintf(name, sizeof name, "sum_rows %dx%d any grid", rows, cols);
            check_exact(name, z2, z);
            std::snprintf(name, sizeof name, "sum_rows %dx%d beta=1", rows, cols);
            check(name, acc, wacc, 1e-5);
        }
    }
    // Max pooling, valid padding: overlapping 3x3/stride 2 on odd sizes, 2x2/2 dropping a ragged
    // column, a 2x3 window with stride (1, 2). Values on a coarse grid give many ties (the first
    // maximum in row-major window order must win); the last geometry also has NaNs (a NaN wins
    // only in a window's first position, as on the CPU).
    struct PoolCase {
        int n, c, h, w, kh, kw, sh, sw, ph, pw;
        bool nans;
    };
    // The last two are padded: ResNet's 3x3/2 stem pool with padding 1, and 2x2/1 padding (1, 0).
    const PoolCase pcs[6] = {{2, 3, 9, 11, 3, 3, 2, 2, 0, 0, false}, {3, 2, 8, 7, 2, 2, 2, 2, 0, 0, false},
                             {1, 5, 6, 9, 2, 3, 1, 2, 0, 0, false}, {2, 2, 9, 9, 3, 3, 2, 2, 0, 0, true},
                             {2, 3, 10, 9, 3, 3, 2, 2, 1, 1, false}, {1, 4, 5, 6, 2, 2, 1, 1, 1, 0, false}};
    for (const auto& pc : pcs) {
        const int planes = pc.n * pc.c, oh = (pc.h + 2 * pc.ph - pc.kh) / pc.sh + 1,
                  ow = (pc.w + 2 * pc.pw - pc.kw) / pc.sw + 1;
        const int in_len = planes * pc.h * pc.w, out_len = planes * oh * ow;
        std::vector<float> x(in_len);
        for (auto& v : x) v = std::round(rnd() * 2.f) / 2.f;  // {-1, -0.5, 0, 0.5, 1}: ties
        if (pc.nans)
            for (int i = 0; i < in_len; i += 7) x[i] = NAN;
        std::vector<float> y(out_len, pc.nans ? 1e30f : NAN), wy;
        std::vector<int> arg(out_len, -7), warg;
        emu::launch(EmuDim3{3, 1, 1}, NT, [&] {
            max_pool2d_fwd(x.data(), y.data(), arg.data(), planes, pc.h, pc.w, pc.kh, pc.kw, pc.sh, pc.sw, oh, ow, pc.ph,
                           pc.pw);
        });
        max_pool_ref(x, planes, pc.h, pc.w, pc.kh, pc.kw, pc.sh, pc.sw, pc.ph, pc.pw, wy, warg);
        const auto g = rnd_vec(out_len);
        std::vector<float> dx(in_len, NAN), wdx(in_len, 0.f);
        for (int o = 0; o < out_len; ++o)
            if (warg[o] >= 0) wdx[warg[o]] += g[o];  // the CPU scatter, in order
        emu::launch(EmuDim3{2, 1, 1}, NT, [&] {
            max_pool2d_bwd(g.data(), arg.data(), dx.data(), planes, pc.h, pc.w, pc.kh, pc.kw, pc.sh, pc.sw, oh, ow, pc.ph,
                           pc.pw);
        });
        char name[96];
        std::snprintf(name, sizeof name, "max_pool2d %dx%d/%d,%d pad %d,%d on %dx%d%s y", pc.kh, pc.kw, pc.sh, pc.sw,
                      pc.ph, pc.pw, pc.h, pc.w, pc.nans ? " NaN" : "");
        check_exact(name, y, wy);
        check_exact("  argmax (ties: first maximum)", arg, warg);
        check_exact("  backward (bit-exact)", dx, wdx);
        if (pc.nans) continue;
        // Average pooling on the same geometry, bit-exact against the CPU's order.
        const float inv = 1.f / float(pc.kh * pc.kw);
        const auto xa = rnd_vec(in_len);
        std::vector<float> ya(out_len, NAN), dxa(in_len, NAN), wya, wdxa;
        emu::launch(EmuDim3{2, 1, 1}, NT, [&] {
            avg_pool2d_fwd(xa.data(), ya.data(), planes, pc.h, pc.w, pc.kh, pc.kw, pc.sh, pc.sw, oh, ow, pc.ph, pc.pw,
                           inv);
        });
        emu::launch(EmuDim3{2, 1, 1}, NT, [&] {
            avg_pool2d_bwd(g.data(), dxa.data(), planes, pc.h, pc.w, pc.kh, pc.kw, pc.sh, pc.sw, oh, ow, pc.ph, pc.pw,
                           inv);
        });
        avg_pool_ref(xa, g, planes, pc.h, pc.w, pc.kh, pc.kw, pc.sh, pc.sw, pc.ph, pc.pw, wya, wdxa);
        check_exact("  avg_pool2d y (bit-exact)", ya, wya);
        check_exact("  avg_pool2d backward (bit-exact)", dxa, wdxa);
    }
}

// Batch norm (per channel) and group norm (per sample and group) through norm_stats,
// norm_apply, norm_grad_sums and norm_grad_input, against float64 references of
// bioautograd's batch_norm2d / group_norm (forward, dx, dgamma, dbeta), train and eval.
void norm_kernels() {
    const int n = 3, c = 6, hw = 37, len = n * c * hw;
    const auto x = rnd_vec(len, 3.f), dy = rnd_vec(len), gamma = rnd_vec(c), beta = rnd_vec(c);
    const float eps = 1e-3f;
    for (int groups : {0, 2, 6}) {
        // Layouts as the Rust wrapper computes them.
        const bool bn = groups == 0;
        const int cg = bn ? 1 : c / groups;
        const int segs = bn ? c : n * groups, base = bn ? hw : cg * hw, inner = base;
        const int stride = bn ? c * hw : 0, count = bn ? n * hw : cg * hw;
        const int sdiv = bn ? hw : cg * hw, smod = bn ? c : n * groups;
        auto stat_of = [&](int i) { return (i / sdiv) % smod; };
        // float64 reference
        std::vector<double> mu(segs, 0), var(segs, 0), cnt(segs, 0);
        for (int i = 0; i < len; ++i) mu[stat_of(i)] += x[i], cnt[stat_of(i)] += 1;
        for (int s = 0; s < segs; ++s) mu[s] /= cnt[s];
        for (int i = 0; i < len; ++i) var[stat_of(i)] += (x[i] - mu[stat_of(i)]) * (x[i] - mu[stat_of(i)]);
        for (int s = 0; s < segs; ++s) var[s] /= cnt[s];
        std::vector<double> xh(len), wy(len), d(len), s1(segs, 0), s2(segs, 0), wdg(c, 0), wdb(c, 0), wdx(len);
        for (int i = 0; i < len; ++i) {
            const int st = stat_of(i), ch = (i / hw) % c;
            xh[i] = (x[i] - mu[st]) / std::sqrt(var[st] + eps);
            wy[i] = gamma[ch] * xh[i] + beta[ch];
            d[i] = dy[i] * gamma[ch];
            s1[st] += d[i];
            s2[st] += d[i] * xh[i];
            wdg[ch] += dy[i] * xh[i];
            wdb[ch] += dy[i];
        }
        for (int i = 0; i < len; ++i) {
            const int st = stat_of(i);
            wdx[i] = (cnt[st] * d[i] - s1[st] - xh[i] * s2[st]) / (cnt[st] * std::sqrt(var[st] + eps));
        }
        std::vector<float> stats(3 * segs, NAN), y(len, NAN), sums(2 * segs, NAN), csums(2 * c, NAN), dx(len, NAN);
        emu::launch(EmuDim3{2, 1, 1}, NT,
                    [&] { norm_stats(x.data(), stats.data(), segs, base, inner, stride, count, eps); });
        emu::launch(EmuDim3{3, 1, 1}, NT, [&] {
            norm_apply(x.data(), stats.data(), gamma.data(), beta.data(), y.data(), len, segs, sdiv, smod, hw, c, 1);
        });
        emu::launch(EmuDim3{2, 1, 1}, NT, [&] {
            norm_grad_sums(x.data(), dy.data(), stats.data(), gamma.data(), sums.data(), segs, base, inner, stride,
                           count, segs, sdiv, smod, hw, c, 1);
        });
        // dgamma, dbeta: per channel (the batch-norm layout), without gamma.
        emu::launch(EmuDim3{2, 1, 1}, NT, [&] {
            norm_grad_sums(x.data(), dy.data(), stats.data(), gamma.data(), csums.data(), c, hw, hw, c * hw, n * hw,
                           segs, sdiv, smod, hw, c, 0);
        });
        emu::launch(EmuDim3{2, 1, 1}, NT, [&] {
            norm_grad_input(x.data(), dy.data(), stats.data(), gamma.data(), sums.data(), dx.data(), len, segs, sdiv,
                            smod, hw, c, 1, 1, float(count), 0.f);
        });
        std::vector<double> wstats(3 * segs);
        for (int s = 0; s < segs; ++s) {
            wstats[s] = mu[s];
            wstats[segs + s] = var[s];
            wstats[2 * segs + s] = 1 / std::sqrt(var[s] + eps);
        }
        std::vector<double> wsums(2 * segs), wcsums(2 * c);
        for (int s = 0; s < segs; ++s) wsums[s] = s1[s], wsums[segs + s] = s2[s];
        for (int k = 0; k < c; ++k) wcsums[k] = wdb[k], wcsums[c + k] = wdg[k];
        char name[64];
        const char* kind = bn ? "batch" : (groups == c ? "group (1 ch)" : "group");
        std::snprintf(name, sizeof name, "norm_stats %s", kind);
        check(name, stats, wstats, 1e-5);
        std::snprintf(name, sizeof name, "norm_apply %s", kind);
        check(name, y, wy, 1e-5);
        std::snprintf(name, sizeof name, "norm_grad_sums %s", kind);
        check(name, sums, wsums, 1e-5);
        std::snprintf(name, sizeof name, "norm_grad_sums %s dgamma/dbeta", kind);
        check(name, csums, wcsums, 1e-5);
        std::snprintf(name, sizeof name, "norm_grad_input %s", kind);
        check(name, dx, wdx, 1e-4);
        if (bn) {
            // Eval: running statistics (here the batch's), dx = d * invstd, added to dx0.
            const auto dx0 = rnd_vec(len);
            std::vector<float> dxe = dx0;
            emu::launch(EmuDim3{2, 1, 1}, NT, [&] {
                norm_grad_input(x.data(), dy.data(), stats.data(), gamma.data(), sums.data(), dxe.data(), len, segs,
                                sdiv, smod, hw, c, 1, 0, float(count), 1.f);
            });
            std::vector<double> wdxe(len);
            for (int i = 0; i < len; ++i) wdxe[i] = dx0[i] + d[i] / std::sqrt(var[stat_of(i)] + eps);
            check("norm_grad_input eval beta=1", dxe, wdxe, 1e-5);
        }
    }
}

// Row softmax / log-softmax (forward, backward) and BCE on logits.
void softmax_bce_kernels() {
    const int rows = 301, cols = 7, len = rows * cols;
    const auto x = rnd_vec(len, 6.f), dy = rnd_vec(len), dx0 = rnd_vec(len);
    for (int log : {0, 1}) {
        std::vector<float> y(len, NAN), dx = dx0;
        emu::launch(EmuDim3{1, 1, 1}, NT, [&] { softmax_rows_fwd(x.data(), y.data(), rows, cols, log); });
        emu::launch(EmuDim3{1, 1, 1}, NT, [&] { softmax_rows_bwd(y.data(), dy.data(), dx.data(), rows, cols, log, 1.f); });
        std::vector<double> wy(len), wdx(len);
        for (int r = 0; r < rows; ++r) {
            double mx = -1e300, sum = 0, sg = 0, sgy = 0;
            for (int j = 0; j < cols; ++j) mx = std::max(mx, double(x[r * cols + j]));
            for (int j = 0; j < cols; ++j) sum += std::exp(x[r * cols + j] - mx);
            for (int j = 0; j < cols; ++j) {
                const double p = std::exp(x[r * cols + j] - mx) / sum;
                wy[r * cols + j] = log ? std::log(p) : p;
                sg += dy[r * cols + j];
                sgy += dy[r * cols + j] * p;
            }
            for (int j = 0; j < cols; ++j) {
                const double p = std::exp(x[r * cols + j] - mx) / sum, g = dy[r * cols + j];
                wdx[r * cols + j] = dx0[r * cols + j] + (log ? g - p * sg : p * (g - sgy));
            }
        }
        check(log ? "log_softmax rows" : "softmax rows", y, wy, 1e-6);
        check(log ? "log_softmax rows bwd beta=1" : "softmax rows bwd beta=1", dx, wdx, 1e-5);
    }
    const int n = 1237;
    const auto z = rnd_vec(n, 30.f), t = rnd_vec(n);
    std::vector<float> loss(n, NAN), dz(n, NAN);
    emu::launch(EmuDim3{2, 1, 1}, NT, [&] { bce_logits(z.data(), t.data(), loss.data(), dz.data(), n, 0.5f); });
    std::vector<double> wl(n), wd(n);
    for (int i = 0; i < n; ++i) {
        const double v = z[i];
        wl[i] = std::max(v, 0.0) - v * t[i] + std::log1p(std::exp(-std::abs(v)));
        wd[i] = (sigmoid_ref(v) - t[i]) * 0.5;
    }
    check("bce_logits loss", loss, wl, 1e-6);
    check("bce_logits dz", dz, wd, 1e-6);
}
}  // namespace

// plane_map: bilinear upsampling of 5x3 planes by 2 (four taps per output, half-pixel centres,
// clamped at the borders) and its adjoint (the backward), against a float replica of the CPU
// op's gather and scatter, bit-exact; a grid of 2 CTAs exercises the grid-stride loop.
void plane_map_kernels() {
    const int h = 5, w = 3, oh = 10, ow = 6, planes = 7, in_len = h * w, out_len = oh * ow;
    auto taps = [](int i, int size) {
        const double s = (i + 0.5) / 2.0 - 0.5, fl = std::floor(s), lam = s - fl;
        auto clamp = [&](double v) { return std::min(int(std::max(v, 0.0)), size - 1); };
        return std::array<std::pair<int, double>, 2>{{{clamp(fl), 1.0 - lam}, {clamp(fl + 1.0), lam}}};
    };
    std::vector<int> off{0}, src;
    std::vector<float> wt;
    for (int i = 0; i < oh; ++i)
        for (int j = 0; j < ow; ++j) {
            const auto r = taps(i, h), c = taps(j, w);
            for (int k = 0; k < 4; ++k) {
                src.push_back(r[k / 2].first * w + c[k % 2].first);
                wt.push_back(float(r[k / 2].second * c[k % 2].second));
            }
            off.push_back(int(src.size()));
        }
    // The adjoint: per input, its taps in increasing output order.
    std::vector<int> aoff(in_len + 1, 0), asrc(src.size());
    std::vector<float> awt(src.size());
    for (int s : src) aoff[s + 1]++;
    for (int j = 0; j < in_len; ++j) aoff[j + 1] += aoff[j];
    std::vector<int> next(aoff.begin(), aoff.end() - 1);
    for (int i = 0; i < out_len; ++i)
        for (int t = off[i]; t < off[i + 1]; ++t) {
            asrc[next[src[t]]] = i;
            awt[next[src[t]]++] = wt[t];
        }
    const auto x = rnd_vec(size_t(planes) * in_len), g = rnd_vec(size_t(planes) * out_len);
    std::vector<float> y(size_t(planes) * out_len, NAN), dx(x.size(), NAN), wy(y.size()), wdx(x.size(), 0.f);
    for (int p = 0; p < planes; ++p)
        for (int i = 0; i < out_len; ++i) {
            float acc = -0.f;
            for (int t = off[i]; t < off[i + 1]; ++t) {
                acc += wt[t] * x[size_t(p) * in_len + src[t]];
                wdx[size_t(p) * in_len + src[t]] += g[size_t(p) * out_len + i] * wt[t];
            }
            wy[size_t(p) * out_len + i] = acc;
        }
    emu::launch(EmuDim3{2, 1, 1}, NT, [&] {
        plane_map(x.data(), y.data(), off.data(), src.data(), wt.data(), planes, in_len, out_len);
    });
    emu::launch(EmuDim3{2, 1, 1}, NT, [&] {
        plane_map(g.data(), dx.data(), aoff.data(), asrc.data(), awt.data(), planes, out_len, in_len);
    });
    check_exact("plane_map bilinear x2 (bit-exact)", y, wy);
    check_exact("plane_map adjoint = the CPU scatter (bit-exact)", dx, wdx);
}

int main() {
    // relu forward / backward
    {
        const int n = 1000;
        std::vector<float> x(n), dy(n), y(n, NAN), dx(n, NAN);
        for (auto& v : x) v = rnd();
        for (auto& v : dy) v = rnd();
        emu::launch(EmuDim3{blocks(n), 1, 1}, NT, [&] { relu_fwd(x.data(), y.data(), n); });
        emu::launch(EmuDim3{blocks(n), 1, 1}, NT, [&] { relu_bwd(x.data(), dy.data(), dx.data(), n); });
        std::vector<double> wy(n), wdx(n);
        for (int i = 0; i < n; ++i) {
            wy[i] = x[i] > 0 ? x[i] : 0;
            wdx[i] = x[i] > 0 ? dy[i] : 0;
        }
        check("relu_fwd", y, wy, 1e-7);
        check("relu_bwd", dx, wdx, 1e-7);
    }
    // bias add and bias gradients
    {
        const int rows = 37, cols = 300, n = 3, c = 5, hw = 300;
        std::vector<float> y(rows * cols), b(cols), dy(rows * cols), db(cols, NAN), dyc(n * c * hw), dbc(c, NAN);
        for (auto& v : y) v = rnd();
        for (auto& v : b) v = rnd();
        for (auto& v : dy) v = rnd();
        for (auto& v : dyc) v = rnd();
        std::vector<double> wy(rows * cols), wdb(cols, 0.0), wdbc(c, 0.0);
        for (int i = 0; i < rows * cols; ++i) wy[i] = double(y[i]) + b[i % cols];
        for (int i = 0; i < rows * cols; ++i) wdb[i % cols] += dy[i];
        for (int i = 0; i < n * c * hw; ++i) wdbc[(i / hw) % c] += dyc[i];
        emu::launch(EmuDim3{blocks((long long)rows * cols), 1, 1}, NT, [&] { bias_add_rows(y.data(), b.data(), rows, cols); });
        emu::launch(EmuDim3{blocks(cols), 1, 1}, NT, [&] { bias_grad_rows(dy.data(), db.data(), rows, cols); });
        emu::launch(EmuDim3{unsigned(c), 1, 1}, NT, [&] { bias_grad_nchw(dyc.data(), dbc.data(), n, c, hw); });
        check("bias_add_rows", y, wy, 1e-6);
        std::vector<float> yc(n * c * hw);
        for (auto& v : yc) v = rnd();
        std::vector<double> wyc(n * c * hw);
        for (int i = 0; i < n * c * hw; ++i) wyc[i] = double(yc[i]) + b[(i / hw) % c];
        emu::launch(EmuDim3{blocks((long long)n * c * hw), 1, 1}, NT, [&] { bias_add_nchw(yc.data(), b.data(), n, c, hw); });
        check("bias_add_nchw", yc, wyc, 1e-6);
        check("bias_grad_rows", db, wdb, 1e-5);
        check("bias_grad_nchw", dbc, wdbc, 1e-5);
    }
    // softmax cross-entropy
    {
        const int rows = 300, classes = 10;
        std::vector<float> z(rows * classes), labels(rows), loss(rows, NAN), dz(rows * classes, NAN);
        for (auto& v : z) v = 4 * rnd();
        for (int r = 0; r < rows; ++r) labels[r] = float(int((rnd() + 1) * 5) % classes);
        const float scale = 1.0f / rows;
        emu::launch(EmuDim3{blocks(rows), 1, 1}, NT,
                    [&] { softmax_xent(z.data(), labels.data(), loss.data(), dz.data(), rows, classes, scale); });
        std::vector<double> wl(rows), wdz(rows * classes);
        for (int r = 0; r < rows; ++r) {
            double mx = z[r * classes], sum = 0;
            for (int j = 0; j < classes; ++j) mx = std::max(mx, double(z[r * classes + j]));
            for (int j = 0; j < classes; ++j) sum += std::exp(z[r * classes + j] - mx);
            int lab = int(labels[r]);
            wl[r] = std::log(sum) + mx - z[r * classes + lab];
            for (int j = 0; j < classes; ++j)
                wdz[r * classes + j] = (std::exp(z[r * classes + j] - mx) / sum - (j == lab)) * double(scale);
        }
        check("softmax_xent loss", loss, wl, 1e-5);
        check("softmax_xent grad", dz, wdz, 1e-5);
    }
    // softmax cross-entropy with labels that are not class indices: those rows become NaN, the
    // valid rows keep their values, and nothing outside the rows' own slices is touched (each
    // buffer ends in canaries; the old kernel read and wrote z/dz at row * classes + label).
    {
        const int rows = 6, classes = 4, canary = 64;
        const float labels[rows] = {1.f, -1.f, 4.f, 2.5f, NAN, 3.f};
        std::vector<float> z(rows * classes + canary, 7.f), loss(rows + canary, -3.f),
            dz(rows * classes + canary, -3.f);
        for (int i = 0; i < rows * classes; ++i) z[i] = rnd();
        emu::launch(EmuDim3{1, 1, 1}, NT,
                    [&] { softmax_xent(z.data(), labels, loss.data(), dz.data(), rows, classes, 1.f); });
        int wrong = 0;
        for (int r = 0; r < rows; ++r) {
            const bool valid = r == 0 || r == 5;
            wrong += std::isnan(loss[r]) == valid;
            for (int j = 0; j < classes; ++j) wrong += std::isnan(dz[r * classes + j]) == valid;
        }
        for (int i = 0; i < canary; ++i)
            wrong += loss[rows + i] != -3.f || dz[rows * classes + i] != -3.f || z[rows * classes + i] != 7.f;
        ++cases;
        failures += wrong != 0;
        std::printf("%s %-28s %d wrong\n", wrong == 0 ? "PASS" : "FAIL", "softmax_xent bad labels", wrong);
    }
    // Adam and RMSprop, both conventions, three steps each, against float64 replicas.
    for (int torch = 0; torch < 2; ++torch) {
        const int n = 777;
        const double lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = torch ? 1e-8 : 1e-7, wd = torch ? 0.01 : 0.0;
        std::vector<float> w(n), m(n, 0.f), v(n, 0.f), g(n);
        for (auto& x : w) x = rnd();
        std::vector<double> W(w.begin(), w.end()), M(n, 0), V(n, 0);
        for (int t = 1; t <= 3; ++t) {
            for (auto& x : g) x = rnd();
            double bc1 = 1 - std::pow(b1, t), bc2 = 1 - std::pow(b2, t);
            float step = torch ? float(lr / bc1) : float(lr * std::sqrt(bc2) / bc1);
            emu::launch(EmuDim3{blocks(n), 1, 1}, NT, [&] {
                adam_step(w.data(), g.data(), m.data(), v.data(), n, float(b1), float(b2), float(eps), step,
                          float(std::sqrt(bc2)), torch, float(wd));
            });
            for (int i = 0; i < n; ++i) {
                double gi = g[i] + wd * W[i];
                M[i] = b1 * M[i] + (1 - b1) * gi;
                V[i] = b2 * V[i] + (1 - b2) * gi * gi;
                W[i] -= torch ? lr / bc1 * M[i] / (std::sqrt(V[i]) / std::sqrt(bc2) + eps)
                              : lr * std::sqrt(bc2) / bc1 * M[i] / (std::sqrt(V[i]) + eps);
            }
        }
        check(torch ? "adam_step (torch, wd)" : "adam_step (keras)", w, W, 1e-5);
        for (int momentum = 0; momentum < 2; ++momentum) {
            const double rho = torch ? 0.99 : 0.9, mu = momentum ? 0.5 : 0.0;
            std::vector<float> w2(n), s(n, 0.f), b(n, 0.f);
            for (auto& x : w2) x = rnd();
            std::vector<double> W2(w2.begin(), w2.end()), S(n, 0), B(n, 0);
            for (int t = 1; t <= 3; ++t) {
                for (auto& x : g) x = rnd();
                emu::launch(EmuDim3{blocks(n), 1, 1}, NT, [&] {
                    rmsprop_step(w2.data(), g.data(), s.data(), b.data(), n, float(rho), float(eps), float(lr),
                                 float(mu), torch, float(wd));
                });
                for (int i = 0; i < n; ++i) {
                    double gi = g[i] + wd * W2[i];
                    S[i] = rho * S[i] + (1 - rho) * gi * gi;
                    if (!torch) {
                        double inc = lr * gi / std::sqrt(S[i] + eps);
                        B[i] = mu * B[i] + inc;
                        W2[i] -= momentum ? B[i] : inc;
                    } else {
                        double sc = gi / (std::sqrt(S[i]) + eps);
                        B[i] = mu * B[i] + sc;
                        W2[i] -= lr * (momentum ? B[i] : sc);
                    }
                }
            }
            char name[64];
            std::snprintf(name, sizeof name, "rmsprop_step (%s%s)", torch ? "torch, wd" : "keras",
                          momentum ? ", momentum" : "");
            check(name, w2, W2, 1e-5);
        }
    }
    new_kernels();
    norm_kernels();
    plane_map_kernels();
    softmax_bce_kernels();
    std::printf("train kernels: %d/%d cases passed\n", cases - failures, cases);
    return failures == 0 ? 0 : 1;
}
