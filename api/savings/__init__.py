"""Savings metrics: pure computations (no web framework, no database).

Every public computation returns a :class:`~api.savings.provenance.SavingsResult`
carrying its method, its inputs (and their hash), its period and its result,
so the same inputs always give the same answer (docs/savings.md).
"""
