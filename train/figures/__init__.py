"""Figure code of the trainers: ``spot`` (SPOT couplings and W estimates), ``density``
(recovered densities), ``generator`` (generated samples, progress grids)."""
