"""Exact transportation LP by the primal network simplex, compiled for the host with numba (private).

The problem ``min <C, P>, P >= 0, P 1 = a, P^T 1 = b`` is a min-cost flow on the
bipartite graph source i -> sink j (cost ``C_ij``, no capacity). The solver keeps
a spanning tree of ``n + m + 1`` nodes (a root joined to every node by an
artificial arc of cost ``ART``, the big-M start) in parent pointers with child
lists, node potentials ``pi`` (reduced cost of an arc u -> v:
``c_uv + pi_u - pi_v``, zero on tree arcs) and the flow of each node's arc to its
parent. Each pivot

1. prices the arcs in blocks of ``sqrt(n m)`` (the block search rule of Grigoriadis
   and of POT/LEMON): the most negative reduced cost of the first block that has
   one enters;
2. finds the cycle through the tree and pushes the largest feasible flow around
   it; the leaving arc is the *last* blocking arc met walking the cycle from its
   apex (Cunningham's strongly feasible trees: no cycling on the degenerate
   pivots transportation problems are full of);
3. re-hangs the cut-off subtree by the entering arc and recomputes its depths and
   potentials from their parents (no drift from repeated shifts).

Non-tree arcs carry no flow (there are no upper bounds), so the solver stores
``O(n + m)`` besides the cost matrix. At the end ``f = -pi[:n]``, ``g = pi[n:n+m]``
are optimal duals: ``C_ij - f_i - g_j >= -tol`` on every pair.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["network_simplex", "OPTIMAL", "MAX_ITERS", "FAILED"]

OPTIMAL, MAX_ITERS, FAILED = 0, 1, 2
_UP, _DOWN = 1, -1  # a node's tree arc goes to its parent (UP) or comes from it (DOWN)


@numba.njit(cache=True, inline="always")
def _unlink(x, parent, first_child, next_sib, prev_sib):
    p = parent[x]
    if prev_sib[x] >= 0:
        next_sib[prev_sib[x]] = next_sib[x]
    else:
        first_child[p] = next_sib[x]
    if next_sib[x] >= 0:
        prev_sib[next_sib[x]] = prev_sib[x]


@numba.njit(cache=True, inline="always")
def _link(x, p, first_child, next_sib, prev_sib):
    next_sib[x] = first_child[p]
    prev_sib[x] = -1
    if first_child[p] >= 0:
        prev_sib[first_child[p]] = x
    first_child[p] = x


@numba.njit(cache=True)
def _solve(cost, a, b, max_iters, tol):
    n, m = cost.shape
    root = n + m
    size = n + m + 1
    cmax = 0.0
    for i in range(n):
        for j in range(m):
            c = abs(cost[i, j])
            if c > cmax:
                cmax = c
    if cmax == 0.0:
        cmax = 1.0
    # ART exceeds the cost of any path of real arcs, so no optimal flow uses an artificial arc.
    art = 2.0 * cmax * (n + m + 1)
    # Pricing tolerance: above the rounding of reduced costs computed from potentials of size ~ART.
    tol = tol * art

    parent = np.empty(size, np.int64)
    direction = np.empty(size, np.int8)
    flow = np.zeros(size)
    pi = np.zeros(size)
    depth = np.zeros(size, np.int64)
    first_child = np.full(size, -1, np.int64)
    next_sib = np.full(size, -1, np.int64)
    prev_sib = np.full(size, -1, np.int64)
    stack = np.empty(size, np.int64)
    arc_cost = np.full(size, art)  # cost of each node's tree arc to its parent

    parent[root] = -1
    # Strongly feasible start: arcs with flow point to the root only when they carry flow.
    for v in range(n + m):
        parent[v] = root
        depth[v] = 1
        if v < n and a[v] > 0.0:
            direction[v] = _UP
            flow[v] = a[v]
            pi[v] = -art
        else:
            direction[v] = _DOWN
            flow[v] = a[v] if v < n else b[v - n]
            pi[v] = art
        _link(v, root, first_child, next_sib, prev_sib)

    n_arcs = n * m
    block = max(10, int(np.sqrt(n_arcs)))
    if block > n_arcs:
        block = n_arcs
    start_i, start_j = 0, 0
    pivots = 0
    status = OPTIMAL
    while True:
        # ---- pricing: block search from where the last one stopped, a row segment at a time
        best, best_i, best_j = -tol, -1, -1
        i, j = start_i, start_j
        in_block = 0
        scanned = 0
        while scanned < n_arcs:
            stop = min(m, j + block - in_block)
            pi_i = pi[i]
            for jj in range(j, stop):
                rc = cost[i, jj] + pi_i - pi[n + jj]
                if rc < best:
                    best, best_i, best_j = rc, i, jj
            scanned += stop - j
            in_block += stop - j
            j = stop
            if j == m:
                j = 0
                i += 1
                if i == n:
                    i = 0
            if in_block == block:
                if best_i >= 0:
                    break
                in_block = 0
        if best_i < 0:
            break
        start_i, start_j = i, j
        if pivots >= max_iters:
            status = MAX_ITERS
            break
        pivots += 1

        # ---- the cycle: entering arc u_in -> v_in, apex w
        u_in, v_in = best_i, n + best_j
        u, v = u_in, v_in
        while u != v:
            if depth[u] > depth[v]:
                u = parent[u]
            elif depth[v] > depth[u]:
                v = parent[v]
            else:
                u = parent[u]
                v = parent[v]
        apex = u
        # Leaving arc: the last blocking arc walking apex -> u_in -> v_in -> apex.
        delta = np.inf
        q_out = -1
        on_v_side = False
        x = u_in
        while x != apex:  # the cycle runs parent -> x here: UP arcs are backward
            if direction[x] == _UP and flow[x] < delta:
                delta, q_out, on_v_side = flow[x], x, False
            x = parent[x]
        x = v_in
        while x != apex:  # the cycle runs x -> parent here: DOWN arcs are backward
            if direction[x] == _DOWN and flow[x] <= delta:
                delta, q_out, on_v_side = flow[x], x, True
            x = parent[x]
        if q_out < 0:  # an unbounded cycle: impossible for finite costs
            status = FAILED
            break
        if delta > 0.0:
            x = u_in
            while x != apex:
                flow[x] += -delta if direction[x] == _UP else delta
                x = parent[x]
            x = v_in
            while x != apex:
                flow[x] += delta if direction[x] == _UP else -delta
                x = parent[x]
        flow[q_out] = 0.0

        # ---- re-hang the subtree cut at q_out by the entering arc, reversing the path s_in .. q_out
        s_in, t_in = (v_in, u_in) if on_v_side else (u_in, v_in)
        new_parent = t_in
        new_direction = _DOWN if s_in == v_in else _UP
        new_flow = delta
        new_cost = cost[u_in, v_in - n]
        x = s_in
        while True:
            old_parent, old_direction, old_flow, old_cost = parent[x], direction[x], flow[x], arc_cost[x]
            _unlink(x, parent, first_child, next_sib, prev_sib)
            parent[x], direction[x], flow[x], arc_cost[x] = new_parent, new_direction, new_flow, new_cost
            _link(x, new_parent, first_child, next_sib, prev_sib)
            if x == q_out:
                break
            new_parent, new_direction, new_flow, new_cost = x, -old_direction, old_flow, old_cost
            x = old_parent

        # ---- depths and potentials of the re-hung subtree, from the parents down
        stack[0] = s_in
        top = 1
        while top > 0:
            top -= 1
            x = stack[top]
            p = parent[x]
            depth[x] = depth[p] + 1
            pi[x] = pi[p] - direction[x] * arc_cost[x]
            child = first_child[x]
            while child >= 0:
                stack[top] = child
                top += 1
                child = next_sib[child]

    plan, f, g, value, rows, cols = _finish(cost, parent, flow, pi, root)
    return plan, f, g, value, rows, cols, cmax, pivots, status


@numba.njit(cache=True)
def _finish(cost, parent, flow, pi, root):
    """The plan ``[n, m]``, its row and column sums and ``<C, P>`` from the tree flows; tight duals.

    ``f_i = min_j C_ij - g_j`` then ``g_j = min_i C_ij - f_i``, from the tree's optimal
    duals ``f = -pi[:n]``, ``g = pi[n:]``: they stay optimal (on the plan's support the
    minimum is attained where it was), ``C - f - g >= 0`` holds by construction, and a
    zero-mass point gets its tightest potential instead of one of size ``ART``.
    """
    n, m = cost.shape
    plan = np.zeros((n, m))
    rows, cols = np.zeros(n), np.zeros(m)
    value = 0.0
    for x in range(n + m):
        p = parent[x]
        if p == root:
            continue
        i, j = (x, p - n) if x < n else (p, x - n)
        plan[i, j] = flow[x]
        rows[i] += flow[x]
        cols[j] += flow[x]
        value += flow[x] * cost[i, j]
    f = np.empty(n)
    g = pi[n:n + m].copy()
    for i in range(n):
        best = np.inf
        for j in range(m):
            v = cost[i, j] - g[j]
            if v < best:
                best = v
        f[i] = best
    g[:] = np.inf
    for i in range(n):
        fi = f[i]
        for j in range(m):
            v = cost[i, j] - fi
            if v < g[j]:
                g[j] = v
    return plan, f, g, value, rows, cols


def network_simplex(cost: np.ndarray, a: np.ndarray, b: np.ndarray, max_iters: int):
    """Solve one transportation LP exactly. ``cost: [n, m]``, ``a: [n]``, ``b: [m]`` float64, equal masses.

    Returns ``(plan [n, m], f [n], g [m], value, rows [n], cols [m], cmax, pivots, state)``:
    ``value = <C, plan>``, ``rows``/``cols`` the plan's marginals, ``cmax = max |C|`` (1 for a
    zero matrix), duals tightened by a c-transform each way (``C - f - g >= 0`` up to
    rounding), and ``state`` one of ``OPTIMAL``, ``MAX_ITERS``, ``FAILED``. Whether the
    result is optimal is for the caller to certify: the marginals and the duality gap
    ``value - (a.f + b.g)``.
    """
    cost = np.ascontiguousarray(cost, dtype=np.float64)
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    tol = 32.0 * np.finfo(np.float64).eps  # relative to ART (see _solve)
    rows_in, cols_in = np.flatnonzero(a > 0), np.flatnonzero(b > 0)
    n, m = cost.shape
    if rows_in.size == n and cols_in.size == m or rows_in.size == 0 or cols_in.size == 0:
        plan, f, g, value, rows, cols, cmax, pivots, state = _solve(cost, a, b, int(max_iters), tol)
        return plan, f, g, float(value), rows, cols, float(cmax), int(pivots), int(state)
    # Zero-mass points carry no flow: solve the LP of the others (padded documents, sparse
    # histograms), then give the dropped points their tightest duals, f_i = min_j C_ij - g_j over
    # the kept columns and g_j = min_i C_ij - f_i over all rows; the kept duals stay as they were.
    sub = np.ascontiguousarray(cost[np.ix_(rows_in, cols_in)])
    plan_s, f_s, g_s, value, rows_s, cols_s, _, pivots, state = _solve(sub, a[rows_in], b[cols_in],
                                                                       int(max_iters), tol)
    plan = np.zeros((n, m))
    plan[np.ix_(rows_in, cols_in)] = plan_s
    rows, cols = np.zeros(n), np.zeros(m)
    rows[rows_in], cols[cols_in] = rows_s, cols_s
    f = np.min(cost[:, cols_in] - g_s[None, :], axis=1)
    f[rows_in] = f_s
    g = np.min(cost - f[:, None], axis=0)
    g[cols_in] = g_s
    cmax = float(np.max(np.abs(cost))) or 1.0
    return plan, f, g, float(value), rows, cols, cmax, int(pivots), int(state)
