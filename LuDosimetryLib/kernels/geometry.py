"""Voxel-pair geometry: how a radial dose point kernel becomes voxel S-values.

For a source voxel and a target voxel of edges ``h = (hx, hy, hz)`` whose centres are ``d`` apart,
the mean absorbed dose in the target per decay uniformly distributed in the source is

    S(d) = ∫ D(|d + u|) w(u) d³u,   w(u) = Π_a max(0, 1 − |u_a|/h_a) / h_a,

where ``D(r)`` is the point kernel (dose at distance r from a point source) and ``w`` is the
autocorrelation of the two boxes (a product of triangle functions, ∫ w = 1). Two evaluations:

* **radial** (offsets near the source, where D is singular at r = 0): with the radial energy
  distribution F(r) = 4πr²ρD(r) (energy deposited per unit radius, finite at r = 0),
  S(d) = (1/ρ) ∫ F(r) G_d(r) dr, where G_d(r) = ⟨w(d + rΩ)⟩ over directions Ω is pure geometry.
  F is integrated exactly per radial bin and G taken at bin centres (product Gauss–Legendre in
  cos θ × uniform φ for the directions);
* **cubature** (farther offsets, D smooth over the pair): a product rule exact for polynomials of
  degree 5 under the triangle weight (nodes 0, ±√0.4·h_a; weights 7/12, 5/24, 5/24).

Because Σ_d w(u − d) = 1/V for any u, the kernel conserves energy: Σ_d S(d)·ρV = ∫ F dr.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["pair_radial_weights", "octant_offsets", "triangle_cubature", "directions"]


@functools.cache
def directions(n_theta: int = 24, n_phi: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors (N, 3) and weights (N,) summing to 1 for averaging over the sphere."""
    x, w = np.polynomial.legendre.leggauss(n_theta)
    phi = (np.arange(n_phi) + 0.5) * (2.0 * np.pi / n_phi)
    ct = np.repeat(x, n_phi)
    st = np.sqrt(1.0 - ct**2)
    ph = np.tile(phi, n_theta)
    dirs = np.stack([st * np.cos(ph), st * np.sin(ph), ct], axis=1)
    weights = np.repeat(w, n_phi) / (2.0 * n_phi)
    dirs.setflags(write=False)
    weights.setflags(write=False)
    return dirs, weights


def octant_offsets(n: tuple[int, int, int]) -> np.ndarray:
    """All integer offsets 0 ≤ i ≤ n[0], 0 ≤ j ≤ n[1], 0 ≤ k ≤ n[2], shape (M, 3)."""
    g = np.meshgrid(*(np.arange(m + 1) for m in n), indexing="ij")
    return np.stack([a.ravel() for a in g], axis=1)


def pair_radial_weights(h_mm: np.ndarray, offsets: np.ndarray, r_mm: np.ndarray) -> np.ndarray:
    """G_d(r): spherical mean of the voxel-pair weight w(d + rΩ) (mm⁻³).

    Parameters
    ----------
    h_mm : array (3,)
        Voxel edges (mm).
    offsets : array (M, 3) of int
        Voxel offsets d / h.
    r_mm : array (R,)
        Radii (mm).

    Returns
    -------
    numpy.ndarray, shape (M, R)
    """
    h = np.asarray(h_mm, dtype=float)
    dirs, wdir = directions()
    r_all = np.asarray(r_mm, dtype=float)
    out = np.zeros((len(offsets), len(r_all)))
    inv_vol = 1.0 / np.prod(h)
    for m, d in enumerate(np.asarray(offsets, dtype=float)):
        # w(d + rΩ) vanishes unless r lies between the nearest and farthest relative positions
        r_lo = np.linalg.norm(np.maximum(np.abs(d) - 1.0, 0.0) * h)
        r_hi = np.linalg.norm((np.abs(d) + 1.0) * h)
        sel = np.nonzero((r_all >= r_lo) & (r_all <= r_hi))[0]
        if not len(sel):
            continue
        r = r_all[sel, None]
        acc = np.full((len(sel), len(wdir)), inv_vol)
        for a in range(3):
            t = np.abs(d[a] * h[a] + r * dirs[None, :, a]) / h[a]
            np.subtract(1.0, t, out=t)
            np.maximum(t, 0.0, out=t)
            acc *= t
        out[m, sel] = acc @ wdir
    return out


_TRI_NODES = np.array([-np.sqrt(0.4), 0.0, np.sqrt(0.4)])
_TRI_WEIGHTS = np.array([5.0 / 24.0, 7.0 / 12.0, 5.0 / 24.0])


def triangle_cubature(h_mm: np.ndarray, order: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Nodes (N, 3) in mm and weights (N,) of the pair-weight cubature.

    ``order`` 0: 3 nodes per axis, exact to degree 5 (27 nodes). ``order`` n > 0: n Gauss–Legendre
    nodes on each half [−h, 0], [0, h] times the triangle weight ((2n)³ nodes), for offsets close
    to the source where the point kernel varies strongly over the pair.
    """
    h = np.asarray(h_mm, dtype=float)
    if order:
        x, w = np.polynomial.legendre.leggauss(order)
        nodes1 = np.concatenate([(x - 1.0) / 2.0, (x + 1.0) / 2.0])
        weights1 = np.concatenate([w, w]) / 2.0 * (1.0 - np.abs(nodes1))
    else:
        nodes1, weights1 = _TRI_NODES, _TRI_WEIGHTS
    g = np.meshgrid(nodes1, nodes1, nodes1, indexing="ij")
    gw = np.meshgrid(weights1, weights1, weights1, indexing="ij")
    nodes = np.stack([a.ravel() for a in g], axis=1) * h[None, :]
    weights = gw[0].ravel() * gw[1].ravel() * gw[2].ravel()
    return nodes, weights
