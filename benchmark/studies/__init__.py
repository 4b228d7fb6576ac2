"""Studies: one pipeline that reproduces a published table, and a short spec per table.

The pipeline (:mod:`benchmark.studies.pipeline`) runs a table's stages in order: tune the classical
strategies on the ``tune`` stream and evaluate them on the ``test`` stream (``classical``), train
the learned columns (``learned``), compare every cell with the published one (``compare``), render
the report (``render``: Markdown and CSV) and log it (``log``: MLflow). A table is a
:class:`benchmark.studies.spec.TableSpec` (``rl2_table1``, ``rl2_table2``) whose budgets are in
``benchmark/configs/reproduce/<table>.yaml``; :mod:`benchmark.studies.registry` lists them.
"""
