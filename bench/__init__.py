"""The lab beside the product: the benchmark (``python -m bench``), the default-model study
(``python -m bench.study_default``), the naive demo server it compares with, and the process
harness that the bench and the tests share. Not part of the installed package."""
