// Runs kernels/masked_gemm/masked_gemm.cu on the CPU through host_emulation.h and checks every
// kernel (forward, dX, dW x f32, tf32, bf16) against a float64 reference, with the launch
// geometry of crates/biokernels/src/cuda/backend.rs and the tile lists of
// crates/biokernels/src/cuda/tile_list.rs (rebuilt here from the dense mask the same way).
//
// Outputs are poisoned with NaN before each launch and must be fully written; inputs are
// random and never zero; dW must be exactly 0 off the mask; beta = 1 must accumulate.
// Build and run: kernels/emulate/run.sh (exit status 0 when every case passes).

#define KERNELS_HOST_EMULATION 1
#include "../masked_gemm/masked_gemm.cu"

#include <cstdio>
#include <string>

namespace {

uint64_t g_rng = 0x9E3779B97F4A7C15ull;
float rnd() {  // [-1, 1), never 0
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    float v = float((g_rng >> 40) + 0.5) / float(1u << 23) - 1.0f;
    return v == 0.0f ? 0.25f : v;
}

struct Lists {
    int grid_rows, grid_cols;
    std::vector<int> col_ptr, row_ptr, tile_slots;
    std::vector<int2> col_entries, row_entries;
    std::vector<unsigned long long> bits;
};

Lists build_lists(const std::vector<char>& mask, int k, int n) {
    Lists l;
    l.grid_rows = (k + TILE - 1) / TILE;
    l.grid_cols = (n + TILE - 1) / TILE;
    l.tile_slots.assign(l.grid_rows * l.grid_cols, -2);
    for (int tr = 0; tr < l.grid_rows; ++tr)
        for (int tc = 0; tc < l.grid_cols; ++tc) {
            std::vector<unsigned long long> block(TILE, 0);
            int ones = 0, area = 0;
            for (int r = tr * TILE; r < std::min(k, (tr + 1) * TILE); ++r)
                for (int c = tc * TILE; c < std::min(n, (tc + 1) * TILE); ++c) {
                    ++area;
                    if (mask[size_t(r) * n + c]) {
                        ++ones;
                        block[r - tr * TILE] |= 1ull << (c - tc * TILE);
                    }
                }
            int slot = -2;
            if (ones == area) slot = -1;
            else if (ones > 0) {
                slot = int(l.bits.size() / TILE);
                l.bits.insert(l.bits.end(), block.begin(), block.end());
            }
            l.tile_slots[tr * l.grid_cols + tc] = slot;
        }
    l.col_ptr.push_back(0);
    for (int tc = 0; tc < l.grid_cols; ++tc) {
        for (int tr = 0; tr < l.grid_rows; ++tr)
            if (l.tile_slots[tr * l.grid_cols + tc] != -2) l.col_entries.push_back({tr, l.tile_slots[tr * l.grid_cols + tc]});
        l.col_ptr.push_back(int(l.col_entries.size()));
    }
    l.row_ptr.push_back(0);
    for (int tr = 0; tr < l.grid_rows; ++tr) {
        for (int tc = 0; tc < l.grid_cols; ++tc)
            if (l.tile_slots[tr * l.grid_cols + tc] != -2) l.row_entries.push_back({tc, l.tile_slots[tr * l.grid_cols + tc]});
        l.row_ptr.push_back(int(l.row_entries.size()));
    }
    if (l.bits.empty()) l.bits.push_back(0);
    if (l.col_entries.empty()) l.col_entries.push_back({0, 0});
    if (l.row_entries.empty()) l.row_entries.push_back({0, 0});
    return l;
}

enum Op { FWD, DX, DW };
const char* op_name[] = {"forward", "dx", "dw"};
const char* prec_name[] = {"f32", "tf32", "bf16"};
const double tol[] = {1e-5, 1e-3, 1e-2};

std::vector<__nv_bfloat16> to_bf16(const std::vector<float>& v) {
    std::vector<__nv_bfloat16> out(v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = __float2bfloat16_rn(v[i]);
    return out;
}

// The kernel launch exactly as backend.rs does it.
void launch(Op op, int prec, const std::vector<float>& a, const std::vector<float>& b, std::vector<float>& out,
            int m, int k, int n, const Lists& l, float beta) {
    auto ab = to_bf16(a), bb = to_bf16(b);
    unsigned mb = unsigned((m + 127) / 128);
    EmuDim3 grid = op == FWD ? EmuDim3{mb, unsigned(l.grid_cols), 1}
                 : op == DX  ? EmuDim3{mb, unsigned(l.grid_rows), 1}
                             : EmuDim3{unsigned(l.grid_cols), unsigned(l.grid_rows), 1};
    const float *fa = a.data(), *fb = b.data();
    const __nv_bfloat16 *ha = ab.data(), *hb = bb.data();
    float* o = out.data();
    std::function<void()> body = [&] {
        switch (op * 3 + prec) {
            case 0: masked_gemm_fwd_f32(fa, fb, o, m, k, n, l.col_ptr.data(), l.col_entries.data(), l.bits.data(), beta); break;
            case 1: masked_gemm_fwd_tf32(fa, fb, o, m, k, n, l.col_ptr.data(), l.col_entries.data(), l.bits.data(), beta); break;
            case 2: masked_gemm_fwd_bf16(ha, hb, o, m, k, n, l.col_ptr.data(), l.col_entries.data(), l.bits.data(), beta); break;
            case 3: masked_gemm_dx_f32(fa, fb, o, m, k, n, l.row_ptr.data(), l.row_entries.data(), l.bits.data(), beta); break;
            case 4: masked_gemm_dx_tf32(fa, fb, o, m, k, n, l.row_ptr.data(), l.row_entries.data(), l.bits.data(), beta); break;
            case 5: masked_gemm_dx_bf16(ha, hb, o, m, k, n, l.row_ptr.data(), l.row_entries.data(), l.bits.data(), beta); break;
            case 6: masked_gemm_dw_f32(fa, fb, o, m, k, n, l.tile_slots.data(), l.bits.data(), beta); break;
            case 7: masked_gemm_dw_tf32(fa, fb, o, m, k, n, l.tile_slots.data(), l.bits.data(), beta); break;
            case 8: masked_gemm_dw_bf16(ha, hb, o, m, k, n, l.tile_slots.data(), l.bits.data(), beta); break;
        }
    };
    emu::launch(grid, NTHREADS, body);
}

std::vector<double> reference(Op op, const std::vector<float>& a, const std::vector<float>& b,
                              const std::vector<char>& mask, int m, int k, int n) {
    std::vector<double> out;
    if (op == FWD) {
        out.assign(size_t(m) * n, 0.0);
        for (int i = 0; i < m; ++i)
            for (int kk = 0; kk < k; ++kk)
                for (int j = 0; j < n; ++j)
                    if (mask[size_t(kk) * n + j]) out[size_t(i) * n + j] += double(a[size_t(i) * k + kk]) * b[size_t(kk) * n + j];
    } else if (op == DX) {
        out.assign(size_t(m) * k, 0.0);
        for (int i = 0; i < m; ++i)
            for (int kk = 0; kk < k; ++kk)
                for (int j = 0; j < n; ++j)
                    if (mask[size_t(kk) * n + j]) out[size_t(i) * k + kk] += double(a[size_t(i) * n + j]) * b[size_t(kk) * n + j];
    } else {
        out.assign(size_t(k) * n, 0.0);
        for (int i = 0; i < m; ++i)
            for (int kk = 0; kk < k; ++kk)
                for (int j = 0; j < n; ++j)
                    if (mask[size_t(kk) * n + j]) out[size_t(kk) * n + j] += double(a[size_t(i) * k + kk]) * b[size_t(i) * n + j];
    }
    return out;
}

// Masked conv2d forward (one launch per group, as backend.rs does) against a float64 reference.
int conv_cases() {
    // {n, cin, h, w, cout, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, groups}; oh/ow filled below.
    std::vector<ConvGeom> geoms = {
        {2, 6, 9, 7, 70, 3, 3, 1, 1, 1, 1, 1, 1, 0, 0, 1},
        {3, 8, 10, 11, 12, 3, 2, 2, 1, 1, 0, 1, 2, 0, 0, 2},
    };
    int failures = 0, cases = 0;
    for (auto g : geoms) {
        g.oh = (g.h + 2 * g.ph - g.dh * (g.kh - 1) - 1) / g.sh + 1;
        g.ow = (g.w + 2 * g.pw - g.dw * (g.kw - 1) - 1) / g.sw + 1;
        const int cin_g = g.cin / g.groups, cout_g = g.cout / g.groups, red = g.kh * g.kw * cin_g;
        std::vector<float> x(size_t(g.n) * g.cin * g.h * g.w), w(size_t(red) * g.cout), bias(g.cout);
        for (auto& v : x) v = rnd();
        for (auto& v : w) v = rnd();
        for (auto& v : bias) v = rnd();
        // Per group: a band over (tap, channel) x out-channel plus random holes.
        std::vector<std::vector<char>> masks(g.groups, std::vector<char>(size_t(red) * cout_g));
        for (auto& mk : masks)
            for (int r = 0; r < red; ++r)
                for (int c = 0; c < cout_g; ++c) mk[size_t(r) * cout_g + c] = std::abs((r % cin_g) * cout_g / cin_g - c) <= 2 || rnd() > 0.6f;
        std::vector<double> want(size_t(g.n) * g.cout * g.oh * g.ow, 0.0);
        for (int b = 0; b < g.n; ++b)
            for (int co = 0; co < g.cout; ++co)
                for (int oh = 0; oh < g.oh; ++oh)
                    for (int ow = 0; ow < g.ow; ++ow) {
                        int grp = co / cout_g;
                        double s = bias[co];
                        for (int ti = 0; ti < g.kh; ++ti)
                            for (int tj = 0; tj < g.kw; ++tj)
                                for (int c = 0; c < cin_g; ++c) {
                                    int ih = oh * g.sh - g.ph + ti * g.dh, iw = ow * g.sw - g.pw + tj * g.dw;
                                    if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) continue;
                                    int r = (ti * g.kw + tj) * cin_g + c;
                                    if (!masks[grp][size_t(r) * cout_g + co - grp * cout_g]) continue;
                                    s += double(x[((size_t(b) * g.cin + grp * cin_g + c) * g.h + ih) * g.w + iw]) *
                                         w[size_t(r) * g.cout + co];
                                }
                        want[((size_t(b) * g.cout + co) * g.oh + oh) * g.ow + ow] = s;
                    }
        for (int prec = 0; prec < 3; ++prec) {
            std::vector<float> y(want.size(), NAN);
            auto xb = to_bf16(x), wb = to_bf16(w);
            for (int grp = 0; grp < g.groups; ++grp) {
                Lists l = build_lists(masks[grp], red, cout_g);
                unsigned mb = unsigned((g.n * g.oh * g.ow + 127) / 128);
                float* o = y.data();
                std::function<void()> body = [&] {
                    if (prec == 0) masked_conv2d_fwd_f32(x.data(), w.data(), bias.data(), o, g, grp, l.col_ptr.data(), l.col_entries.data(), l.bits.data(), 0.f);
                    if (prec == 1) masked_conv2d_fwd_tf32(x.data(), w.data(), bias.data(), o, g, grp, l.col_ptr.data(), l.col_entries.data(), l.bits.data(), 0.f);
                    if (prec == 2) masked_conv2d_fwd_bf16(xb.data(), wb.data(), bias.data(), o, g, grp, l.col_ptr.data(), l.col_entries.data(), l.bits.data(), 0.f);
                };
                emu::launch(EmuDim3{mb, unsigned(l.grid_cols), 1}, NTHREADS, body);
            }
            double num = 0, den = 0;
            bool finite = true;
            for (size_t i = 0; i < y.size(); ++i) {
                finite &= std::isfinite(y[i]);
                num += (y[i] - want[i]) * (y[i] - want[i]);
                den += want[i] * want[i];
            }
            double err = std::sqrt(num / den);
            bool ok = finite && err < tol[prec];
            ++cases;
            failures += !ok;
            std::printf("%s conv2d  fwd %-4s n%d c%d %dx%d -> %d, k%dx%d s%dx%d p%dx%d d%dx%d g%d rel.err %.2e%s\n", ok ? "PASS" : "FAIL",
                        prec_name[prec], g.n, g.cin, g.h, g.w, g.cout, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw,
                        g.groups, err, finite ? "" : " [NaN left: output not fully written]");
        }
    }
    std::printf("conv2d: %d/%d cases passed\n", cases - failures, cases);
    return failures;
}

// Input and weight gradients of the masked conv2d against float64 references.
int conv_grad_cases() {
    std::vector<ConvGeom> geoms = {
        {2, 6, 9, 7, 70, 3, 3, 1, 1, 1, 1, 1, 1, 0, 0, 1},
        {3, 8, 10, 11, 12, 3, 2, 2, 1, 1, 0, 1, 2, 0, 0, 2},
    };
    int failures = 0, cases = 0;
    for (auto g : geoms) {
        g.oh = (g.h + 2 * g.ph - g.dh * (g.kh - 1) - 1) / g.sh + 1;
        g.ow = (g.w + 2 * g.pw - g.dw * (g.kw - 1) - 1) / g.sw + 1;
        const int cin_g = g.cin / g.groups, cout_g = g.cout / g.groups, red = g.kh * g.kw * cin_g, taps = g.kh * g.kw;
        std::vector<float> x(size_t(g.n) * g.cin * g.h * g.w), w(size_t(red) * g.cout),
            dy(size_t(g.n) * g.cout * g.oh * g.ow);
        for (auto& v : x) v = rnd();
        for (auto& v : w) v = rnd();
        for (auto& v : dy) v = rnd();
        std::vector<std::vector<char>> masks(g.groups, std::vector<char>(size_t(red) * cout_g));
        for (auto& mk : masks)
            for (int r = 0; r < red; ++r)
                for (int c = 0; c < cout_g; ++c) mk[size_t(r) * cout_g + c] = std::abs((r % cin_g) * cout_g / cin_g - c) <= 2 || rnd() > 0.6f;
        std::vector<double> want_dx(x.size(), 0.0), want_dw(w.size(), 0.0);
        for (int b = 0; b < g.n; ++b)
            for (int co = 0; co < g.cout; ++co)
                for (int oh = 0; oh < g.oh; ++oh)
                    for (int ow = 0; ow < g.ow; ++ow) {
                        int grp = co / cout_g;
                        double d = dy[((size_t(b) * g.cout + co) * g.oh + oh) * g.ow + ow];
                        for (int ti = 0; ti < g.kh; ++ti)
                            for (int tj = 0; tj < g.kw; ++tj)
                                for (int c = 0; c < cin_g; ++c) {
                                    int ih = oh * g.sh - g.ph + ti * g.dh, iw = ow * g.sw - g.pw + tj * g.dw;
                                    if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) continue;
                                    int r = (ti * g.kw + tj) * cin_g + c;
                                    if (!masks[grp][size_t(r) * cout_g + co - grp * cout_g]) continue;
                                    size_t xi = ((size_t(b) * g.cin + grp * cin_g + c) * g.h + ih) * g.w + iw;
                                    want_dx[xi] += d * w[size_t(r) * g.cout + co];
                                    want_dw[size_t(r) * g.cout + co] += d * x[xi];
                                }
                    }
        for (int prec = 0; prec < 3; ++prec) {
            std::vector<float> dx(x.size(), NAN), dw(w.size(), NAN);
            auto xb = to_bf16(x), wb = to_bf16(w), dyb = to_bf16(dy);
            for (int grp = 0; grp < g.groups; ++grp) {
                // dgrad lists: rows (tap, co), cols c.
                std::vector<char> mt(size_t(taps) * cout_g * cin_g);
                for (int t = 0; t < taps; ++t)
                    for (int co = 0; co < cout_g; ++co)
                        for (int c = 0; c < cin_g; ++c)
                            mt[(size_t(t) * cout_g + co) * cin_g + c] = masks[grp][(size_t(t) * cin_g + c) * cout_g + co];
                Lists lt = build_lists(mt, taps * cout_g, cin_g);
                Lists l = build_lists(masks[grp], red, cout_g);
                unsigned mb = unsigned((g.n * g.h * g.w + 127) / 128);
                float *pdx = dx.data(), *pdw = dw.data();
                std::function<void()> body_dx = [&] {
                    if (prec == 0) masked_conv2d_dx_f32(dy.data(), w.data(), pdx, g, grp, lt.col_ptr.data(), lt.col_entries.data(), lt.bits.data(), 0.f);
                    if (prec == 1) masked_conv2d_dx_tf32(dy.data(), w.data(), pdx, g, grp, lt.col_ptr.data(), lt.col_entries.data(), lt.bits.data(), 0.f);
                    if (prec == 2) masked_conv2d_dx_bf16(dyb.data(), wb.data(), pdx, g, grp, lt.col_ptr.data(), lt.col_entries.data(), lt.bits.data(), 0.f);
                };
                emu::launch(EmuDim3{mb, unsigned(lt.grid_cols), 1}, NTHREADS, body_dx);
                std::function<void()> body_dw = [&] {
                    if (prec == 0) masked_conv2d_dw_f32(x.data(), dy.data(), pdw, g, grp, l.tile_slots.data(), l.bits.data(), 0.f);
                    if (prec == 1) masked_conv2d_dw_tf32(x.data(), dy.data(), pdw, g, grp, l.tile_slots.data(), l.bits.data(), 0.f);
                    if (prec == 2) masked_conv2d_dw_bf16(xb.data(), dyb.data(), pdw, g, grp, l.tile_slots.data(), l.bits.data(), 0.f);
                };
                emu::launch(EmuDim3{unsigned(l.grid_cols), unsigned(l.grid_rows), 1}, NTHREADS, body_dw);
            }
            for (int which = 0; which < 2; ++which) {
                const std::vector<float>& got = which == 0 ? dx : dw;
                const std::vector<double>& want = which == 0 ? want_dx : want_dw;
                double num = 0, den = 0;
                bool finite = true, off_ok = true;
                for (size_t i = 0; i < got.size(); ++i) {
                    finite &= std::isfinite(got[i]);
                    num += (got[i] - want[i]) * (got[i] - want[i]);
                    den += want[i] * want[i];
                    if (which == 1) {
                        int r = int(i / g.cout), co = int(i % g.cout), grp = co / cout_g;
                        if (!masks[grp][size_t(r) * cout_g + co - grp * cout_g] && got[i] != 0.0f) off_ok = false;
                    }
                }
                double err = std::sqrt(num / den);
                bool ok = finite && off_ok && err < tol[prec];
                ++cases;
                failures += !ok;
                std::printf("%s conv2d  %s  %-4s n%d c%d %dx%d -> %d, k%dx%d s%dx%d p%dx%d d%dx%d g%d rel.err %.2e%s%s\n",
                            ok ? "PASS" : "FAIL", which == 0 ? "dx" : "dw", prec_name[prec], g.n, g.cin, g.h, g.w, g.cout,
                            g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.groups, err,
                            finite ? "" : " [NaN left: output not fully written]", off_ok ? "" : " [dW off the mask not 0]");
            }
        }
    }
    std::printf("conv2d gradients: %d/%d cases passed\n", cases - failures, cases);
    return failures;
}

}  // namespace

int main(int argc, char** argv) {
    struct Shape {
        int m, k, n;
    };
    // Ragged shapes: off the 128-row, 64-tile and 16/32-step blocks somewhere.
    std::vector<Shape> shapes = {{130, 200, 150}, {37, 64, 257}};
    if (argc > 1 && std::string(argv[1]) == "--quick") shapes.resize(1);
    int failures = 0, cases = 0;
    for (auto s : shapes) {
        const int m = s.m, k = s.k, n = s.n;
        std::vector<std::pair<const char*, std::vector<char>>> masks;
        std::vector<char> band(size_t(k) * n), random(size_t(k) * n), full(size_t(k) * n, 1), holes(size_t(k) * n);
        for (int r = 0; r < k; ++r)
            for (int c = 0; c < n; ++c) {
                band[size_t(r) * n + c] = std::abs(r * n / k - c) <= n / 5;
                random[size_t(r) * n + c] = rnd() > 0;
                holes[size_t(r) * n + c] = (c / 64) % 2 == 0 && (r / 64) % 3 != 1;
            }
        masks.push_back({"band", band});
        masks.push_back({"random", random});
        masks.push_back({"full", full});
        masks.push_back({"holes", holes});
        for (auto& [mask_name, mask] : masks) {
            Lists l = build_lists(mask, k, n);
            for (int op = 0; op < 3; ++op) {
                int ar = m, ac = op == DX ? n : k, br = op == DW ? m : k, bc = n;
                int orow = op == DW ? k : m, ocol = op == DX ? k : n;
                std::vector<float> a(size_t(ar) * ac), b(size_t(br) * bc);
                for (auto& v : a) v = rnd();
                for (auto& v : b) v = rnd();
                auto want = reference(Op(op), a, b, mask, m, k, n);
                for (int prec = 0; prec < 3; ++prec)
                    for (int pass = 0; pass < 2; ++pass) {
                        // pass 0: beta = 0 into a NaN-poisoned output; pass 1: beta = 1 onto random values.
                        float beta = pass == 0 ? 0.0f : 1.0f;
                        std::vector<float> out(size_t(orow) * ocol), prev;
                        for (auto& v : out) v = pass == 0 ? NAN : rnd();
                        prev = out;
                        launch(Op(op), prec, a, b, out, m, k, n, l, beta);
                        double num = 0, den = 0;
                        bool finite = true, off_ok = true;
                        for (size_t i = 0; i < out.size(); ++i) {
                            double w = want[i] + (pass ? double(prev[i]) : 0.0);
                            finite &= std::isfinite(out[i]);
                            num += (out[i] - w) * (out[i] - w);
                            den += w * w;
                            if (op == DW && !mask[i] && out[i] != (pass ? prev[i] : 0.0f)) off_ok = false;
                        }
                        double err = std::sqrt(num / (den > 0 ? den : 1));
                        bool ok = finite && off_ok && err < tol[prec];
                        ++cases;
                        failures += !ok;
                        std::printf("%s %-7s %-4s %3dx%3dx%3d %-6s beta=%d rel.err %.2e %s%s%s\n", ok ? "PASS" : "FAIL",
                                    op_name[op], prec_name[prec], m, k, n, mask_name, pass, err,
                                    finite ? "" : " [NaN left: output not fully written]",
                                    off_ok ? "" : " [dW off the mask not 0/unchanged]", "");
                    }
            }
        }
    }
    std::printf("gemm: %d/%d cases passed\n", cases - failures, cases);
    failures += conv_cases();
    failures += conv_grad_cases();
    return failures == 0 ? 0 : 1;
}
