"""``covid-etl bench``: the pipeline measured against the original project's methods and a pandas floor.

- ``runner``: the command (every benchmark, the table, the JSON record);
- ``loads``: database benchmarks (warehouse load, seeding, bronze extraction) on scratch databases
  (``databases``) against the original methods (``baselines``);
- ``pipeline_runs``: end to end against the floor (``floor``), the Spark layers with one session against a
  session per asset (``spark_steps``), and the pipeline on enlarged datasets (``scale``), each in a child
  process (``pipeline_child``) whose time, CPU and memory are sampled from outside (``processes``);
- ``timing`` and ``report``: interleaved repetitions, medians, ratios, the machine.
"""
