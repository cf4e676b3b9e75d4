/* Ordered nonlinear Gauss-Seidel for the implicit upwind saturation balance
 * (sim/flow/ordered_transport.py says what is solved and why).
 *
 * Per owned vertex i (rows of a CSR layout over the column layout: owned, then ghosts):
 *   R_i(S) = acc_i (S_i - S_old_i) + f(S_i) out_i + sum_j N_ij f(S_j) - q_in_i,
 * N_ij <= 0 the inflow from column j (0 on the diagonal), out_i >= 0 the outflow, acc_i > 0.
 * R_i is increasing in S_i and non-increasing in every other S_j (an M-function), so each
 * vertex's equation has one root in [0, 1] (or none, and the vertex is held at the bound its
 * residual pushes it to) and Gauss-Seidel over the vertices converges.
 *
 * f(S) = S^a / mu_c / (S^a / mu_c + (1 - S)^b / mu_m), Corey exponents a, b >= 1.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>

/* x^e, exactly for the exponents 0, 1 and 2 (as NumPy computes x**2.0) */
static inline double power(double x, double e)
{
    if (e == 0.0)
        return 1.0;
    if (e == 1.0)
        return x;
    if (e == 2.0)
        return x * x;
    return pow(x, e);
}

static void fractional(double s, double a, double b, double inv_mu_c, double inv_mu_m,
                       double *f, double *df)
{
    const double lc = power(s, a) * inv_mu_c, lm = power(1.0 - s, b) * inv_mu_m;
    const double dlc = a * power(s, a - 1.0) * inv_mu_c;
    const double dlm = -b * power(1.0 - s, b - 1.0) * inv_mu_m;
    const double total = lc + lm;
    *f = lc / total;
    *df = (dlc * lm - lc * dlm) / (total * total);
}

/* f at n saturations (the ghost columns after an exchange). */
void ordered_fractional(int64_t n, const double *s, const double *inv_mu_c, double inv_mu_m,
                        double a, double b, double *f)
{
    double df;
    for (int64_t k = 0; k < n; ++k)
        fractional(s[k], a, b, inv_mu_c[k], inv_mu_m, &f[k], &df);
}

/* sum_j N_ij f(S_j) over the off-diagonal entries of row i */
static double inflow_of(int64_t i, const int64_t *indptr, const int32_t *cols,
                        const double *inflow, const double *f_col)
{
    double sum = 0.0;
    for (int64_t k = indptr[i]; k < indptr[i + 1]; ++k)
        if (cols[k] != i)
            sum += inflow[k] * f_col[cols[k]];
    return sum;
}

/* Solve vertex i's equation for S_i with the latest values of the others; updates s[i] and
 * f_col[i], returns |change|. Safeguarded Newton on the bracket [lo, hi] (R_i(lo) < 0 <
 * R_i(hi)) until R_i is at the round-off of its terms or lo and hi are neighbouring doubles;
 * of those two, the one with the smaller |R_i| (where f' is large, e.g. near S = 1 for a
 * viscous cement with linear relative permeabilities, one unit in the last place of S moves
 * f by far more than the round-off of R_i). */
static double solve_vertex(int64_t i, const int64_t *indptr, const int32_t *cols,
                           const double *inflow, const double *out, const double *acc,
                           const double *s_old, const double *q_in, const double *inv_mu_c,
                           double inv_mu_m, double a, double b, double *s, double *f_col)
{
    const double rest = inflow_of(i, indptr, cols, inflow, f_col) - q_in[i];
    const double base = -acc[i] * s_old[i] + rest; /* R_i at S_i = 0 (f(0) = 0) */
    double lo = 0.0, hi = 1.0, r_lo = base, r_hi = acc[i] + out[i] + base; /* f(1) = 1 */
    double x, f, df;
    if (r_lo >= 0.0) {
        x = 0.0;
    } else if (r_hi <= 0.0) {
        x = 1.0;
    } else {
        /* the last value, else S with the accumulation alone (f >= 0: above the root) */
        x = s[i] > 0.0 && s[i] < 1.0 ? s[i] : -base / acc[i];
        if (!(x > lo && x < hi))
            x = 0.5;
        double dx = hi - lo, dx_old = dx; /* the last step and the one before it */
        for (int it = 0; it < 200; ++it) {
            fractional(x, a, b, inv_mu_c[i], inv_mu_m, &f, &df);
            const double r = acc[i] * x + out[i] * f + base;
            if (fabs(r) <= DBL_EPSILON * (acc[i] * x + out[i] * f - base)) {
                lo = hi = x; /* at round-off */
                r_lo = r_hi = r;
                break;
            }
            if (r > 0.0) {
                hi = x;
                r_hi = r;
            } else {
                lo = x;
                r_lo = r;
            }
            if (nextafter(lo, 2.0) >= hi)
                break;
            const double step = r / (acc[i] + out[i] * df);
            double next = x - step;
            if (next == x) /* a step below one unit in the last place: try the neighbour */
                next = nextafter(x, r > 0.0 ? lo : hi);
            /* bisect when Newton leaves the bracket or does not halve the step before last
             * (rtsafe, Numerical Recipes 9.4): where f is S-shaped Newton can bounce between
             * the two ends of the bracket, shrinking it by 1e-4 an iteration */
            if (!(next > lo && next < hi) || fabs(2.0 * step) > dx_old)
                next = 0.5 * (lo + hi);
            dx_old = dx;
            dx = fabs(next - x);
            x = next;
        }
        x = fabs(r_lo) <= fabs(r_hi) ? lo : hi;
    }
    fractional(x, a, b, inv_mu_c[i], inv_mu_m, &f, &df);
    const double change = fabs(x - s[i]);
    s[i] = x;
    f_col[i] = f;
    return change;
}

/* Order the owned vertices upstream first: the strongly connected components of the graph
 * with an edge i -> j for every flux[k] > 0 from i to owned j = cols[k] (Tarjan's algorithm,
 * iterative, which finds each component after every component downstream of it; they are
 * written from the end of `order` backwards). Within a component the vertices come in
 * reverse postorder of the depth-first search, so that only its back edges run backward and
 * Gauss-Seidel over a cycle sees most of its inflows final: a component's vertices are the
 * last ones to have finished, on top of the `finished` stack, when its root finishes (those
 * of the components inside it left with theirs). On the benchmark cube's cement this takes
 * a quarter off the sweeps' time against the order of discovery. `order` receives the
 * vertices, `first` the position in `order` of each component's first vertex followed by n;
 * `work` holds 6 n integers. Returns the number of components. */
int64_t ordered_components(int64_t n, const int64_t *indptr, const int32_t *cols,
                           const double *flux, int64_t *order, int64_t *first, int64_t *work)
{
    int64_t *index = work, *low = work + n, *stack = work + 2 * n;
    int64_t *call = work + 3 * n, *next_entry = work + 4 * n, *finished = work + 5 * n;
    int64_t counter = 0, top = 0, depth = 0, end = n, count = 0, done = 0;
    for (int64_t v = 0; v < n; ++v)
        index[v] = -1;
    for (int64_t root = 0; root < n; ++root) {
        if (index[root] >= 0)
            continue;
        call[0] = root;
        next_entry[0] = indptr[root];
        depth = 1;
        index[root] = low[root] = counter++;
        stack[top++] = root;
        while (depth > 0) {
            const int64_t v = call[depth - 1];
            int64_t k = next_entry[depth - 1];
            int descended = 0;
            for (; k < indptr[v + 1]; ++k) {
                const int64_t w = cols[k];
                if (!(flux[k] > 0.0) || w >= n || w == v)
                    continue;
                if (index[w] < 0) { /* visit w */
                    next_entry[depth - 1] = k + 1;
                    call[depth] = w;
                    next_entry[depth] = indptr[w];
                    ++depth;
                    index[w] = low[w] = counter++;
                    stack[top++] = w;
                    descended = 1;
                    break;
                }
                if (index[w] < n && index[w] < low[v]) /* w on the stack: index < n */
                    low[v] = index[w];
            }
            if (descended)
                continue;
            finished[done++] = v;
            if (low[v] == index[v]) { /* v roots a component: pop it */
                int64_t size = 0;
                while (stack[top - 1 - size] != v)
                    ++size;
                ++size;
                end -= size;
                for (int64_t m = 0; m < size; ++m) {
                    const int64_t w = stack[top - size + m];
                    order[end + m] = finished[done - 1 - m];
                    index[w] = n + index[w]; /* off the stack: index >= n */
                }
                top -= size;
                done -= size;
                first[count++] = end;
            }
            --depth;
            if (depth > 0) {
                const int64_t u = call[depth - 1];
                if (low[v] < low[u])
                    low[u] = low[v];
            }
        }
    }
    /* components were found downstream first: reverse their starts */
    for (int64_t m = 0; m < count / 2; ++m) {
        const int64_t t = first[m];
        first[m] = first[count - 1 - m];
        first[count - 1 - m] = t;
    }
    first[count] = n;
    return count;
}

/* One pass over the components in order (n owned vertices): a single vertex is solved once,
 * a cycle by Gauss-Seidel over its vertices until no saturation changes by more than
 * round-off (at most `max_passes` times; the residual afterwards tells whether it settled),
 * or by more than `settled` if the cycle is `exposed`: it takes an inflow from a ghost column
 * that `changed` in the last exchange, or from an owned vertex of an exposed component
 * upstream (set here for every owned vertex; a cycle whose inflows did not change is
 * settled to round-off). Unless `all`, a component is left alone when none of its vertices
 * is `above` the tolerance (as ordered_residual found them before this pass: a cycle that did
 * not settle in the last pass, a vertex whose neighbours' values came in the last exchange)
 * and no column it takes an inflow from has `changed` (owned columns: earlier in this pass).
 * Updates s and f_col in place, sets `changed` of every owned vertex whose saturation
 * changed; returns the largest change. */
double ordered_sweep(int64_t n, int64_t count, const int64_t *first, const int64_t *order,
                     const int64_t *indptr, const int32_t *cols, const double *inflow,
                     const double *out, const double *acc, const double *s_old,
                     const double *q_in, const double *inv_mu_c, double inv_mu_m, double a,
                     double b, int64_t max_passes, double settled, int all,
                     uint8_t *exposed, const uint8_t *above, uint8_t *changed, double *s,
                     double *f_col)
{
    double moved = 0.0;
    for (int64_t c = 0; c < count; ++c) {
        int needed = all;
        for (int64_t m = first[c]; m < first[c + 1] && !needed; ++m) {
            const int64_t i = order[m];
            needed = above[i];
            for (int64_t k = indptr[i]; k < indptr[i + 1] && !needed; ++k)
                if (inflow[k] < 0.0 && changed[cols[k]]) {
                    needed = 1;
                    break;
                }
        }
        /* an inflow from a neighbour's changed value, directly or through the components
         * upstream (the component's own flags, from the last sweep, are cleared first) */
        for (int64_t m = first[c]; m < first[c + 1]; ++m)
            exposed[order[m]] = 0;
        uint8_t hit = 0;
        for (int64_t m = first[c]; m < first[c + 1] && needed && !hit; ++m) {
            const int64_t i = order[m];
            for (int64_t k = indptr[i]; k < indptr[i + 1]; ++k) {
                const int64_t j = cols[k];
                if (inflow[k] < 0.0 && j != i && (j >= n ? changed[j] : exposed[j])) {
                    hit = 1;
                    break;
                }
            }
        }
        for (int64_t m = first[c]; m < first[c + 1]; ++m)
            exposed[order[m]] = hit;
        if (!needed)
            continue;
        const int64_t passes = first[c + 1] - first[c] > 1 ? max_passes : 1;
        for (int64_t pass = 0; pass < passes; ++pass) {
            double largest = 0.0;
            for (int64_t m = first[c]; m < first[c + 1]; ++m) {
                const double change = solve_vertex(order[m], indptr, cols, inflow, out, acc,
                                                   s_old, q_in, inv_mu_c, inv_mu_m, a, b, s,
                                                   f_col);
                if (change > 0.0)
                    changed[order[m]] = 1;
                if (change > largest)
                    largest = change;
            }
            if (largest > moved)
                moved = largest;
            if (largest <= 4.0 * DBL_EPSILON || (hit && largest <= settled))
                break;
        }
    }
    return moved;
}

/* The largest |R_i| / acc_i over the owned vertices, leaving out a vertex held at a bound
 * that its residual pushes outwards; `above` receives whether each vertex's is above
 * `tolerance`. */
double ordered_residual(int64_t n, const int64_t *indptr, const int32_t *cols,
                        const double *inflow, const double *out, const double *acc,
                        const double *s_old, const double *q_in, const double *s,
                        const double *f_col, double tolerance, uint8_t *above)
{
    double largest = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        const double r = acc[i] * (s[i] - s_old[i]) + f_col[i] * out[i]
                         + inflow_of(i, indptr, cols, inflow, f_col) - q_in[i];
        above[i] = 0;
        if ((s[i] >= 1.0 && r < 0.0) || (s[i] <= 0.0 && r > 0.0))
            continue;
        const double scaled = fabs(r) / acc[i];
        above[i] = scaled > tolerance;
        if (scaled > largest)
            largest = scaled;
    }
    return largest;
}
