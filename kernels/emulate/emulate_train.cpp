// Runs kernels/train/train.cu on the CPU through host_emulation.h against float64 references
// (the optimizer formulas are those of biolayers::optim). Build and run: kernels/emulate/run.sh.

#define KERNELS_HOST_EMULATION 1
#include "../train/train.cu"

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
}  // namespace

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
    std::printf("train kernels: %d/%d cases passed\n", cases - failures, cases);
    return failures == 0 ? 0 : 1;
}
