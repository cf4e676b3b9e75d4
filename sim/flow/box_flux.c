/* The cell loop of the box fluxes (sim/flow/box_flux.py says what is computed and why).
 *
 * Per owned cell c with P1 vertices dofs[4c..4c+3]: the pressure gradient
 * grad p = sum_k grad phi_k p_k, the Darcy velocity u = -(lambda K) grad p and the flux
 * u . N_e through the part of the dual face of each of its six edges that lies in c.
 * Arrays are C-ordered: grad_phi (cells, 4, 3), mobility_k (cells, 3, 3),
 * normals (cells, 6, 3), velocity (cells, 3), edge_flux (cells, 6).
 */
#include <stdint.h>

void cell_fluxes(int64_t n_cells, const int32_t *dofs, const double *grad_phi,
                 const double *p, const double *mobility_k, const double *normals,
                 double *velocity, double *edge_flux)
{
    for (int64_t c = 0; c < n_cells; ++c) {
        const double *g = grad_phi + 12 * c;
        const int32_t *v = dofs + 4 * c;
        double gp[3] = {0.0, 0.0, 0.0};
        for (int k = 0; k < 4; ++k) {
            const double pk = p[v[k]];
            for (int d = 0; d < 3; ++d)
                gp[d] += g[3 * k + d] * pk;
        }
        const double *m = mobility_k + 9 * c;
        double *u = velocity + 3 * c;
        for (int i = 0; i < 3; ++i)
            u[i] = -(m[3 * i] * gp[0] + m[3 * i + 1] * gp[1] + m[3 * i + 2] * gp[2]);
        const double *n = normals + 18 * c;
        for (int e = 0; e < 6; ++e)
            edge_flux[6 * c + e] = n[3 * e] * u[0] + n[3 * e + 1] * u[1] + n[3 * e + 2] * u[2];
    }
}

/* Per cell with P1 vertices dofs[4c..4c+3]: in `vertex` the one of highest p (the first of
 * equal ones, as np.argmax), in `near` a bit k for each vertex k within `tie` (Pa) of it. */
void upwind_vertices(int64_t n_cells, const int32_t *dofs, const double *p, double tie,
                     int32_t *vertex, uint8_t *near)
{
    for (int64_t c = 0; c < n_cells; ++c) {
        const int32_t *v = dofs + 4 * c;
        int top = 0;
        for (int k = 1; k < 4; ++k)
            if (p[v[k]] > p[v[top]])
                top = k;
        const double level = p[v[top]] - tie;
        uint8_t bits = 0;
        for (int k = 0; k < 4; ++k)
            if (p[v[k]] >= level)
                bits |= (uint8_t)(1u << k);
        vertex[c] = v[top];
        near[c] = bits;
    }
}

/* Per entry of the CSR layout (size entries), the sum of the edge values whose (a, b) entry
 * it is, ab, and whose (b, a) entry it is, ba, each in edge order (as np.bincount sums);
 * `entry` receives ab - ba if `antisymmetric`, else ab + ba. The value of edge k is
 * scale[k / 6] * edge[k] (a coefficient per cell times a weight per cell edge), or edge[k]
 * if scale is NULL. ab and ba are work arrays of size entries. */
void edge_sums(int64_t n_edges, const int64_t *pos_ab, const int64_t *pos_ba,
               const double *edge, const double *scale, int64_t size, int antisymmetric,
               double *ab, double *ba, double *entry)
{
    for (int64_t i = 0; i < size; ++i)
        ab[i] = ba[i] = 0.0;
    for (int64_t k = 0; k < n_edges; ++k) {
        const double value = scale ? scale[k / 6] * edge[k] : edge[k];
        ab[pos_ab[k]] += value;
        ba[pos_ba[k]] += value;
    }
    for (int64_t i = 0; i < size; ++i)
        entry[i] = antisymmetric ? ab[i] - ba[i] : ab[i] + ba[i];
}

/* The sum of each of n rows of a CSR layout (in entry order, as np.bincount sums). */
void row_sums(int64_t n, const int64_t *indptr, const double *values, double *sums)
{
    for (int64_t i = 0; i < n; ++i) {
        double sum = 0.0;
        for (int64_t k = indptr[i]; k < indptr[i + 1]; ++k)
            sum += values[k];
        sums[i] = sum;
    }
}

/* Per entry of n rows of a CSR layout, the negative part of `flux` (the inflow, flux - max(
 * flux, 0)), and per row the sum of its positive parts plus `extra` (the outflow). */
void split_fluxes(int64_t n, const int64_t *indptr, const double *flux, const double *extra,
                  double *inflow, double *outflow)
{
    for (int64_t i = 0; i < n; ++i) {
        double sum = 0.0;
        for (int64_t k = indptr[i]; k < indptr[i + 1]; ++k) {
            const double out = flux[k] > 0.0 ? flux[k] : 0.0;
            inflow[k] = flux[k] - out;
            sum += out;
        }
        outflow[i] = sum + extra[i];
    }
}
