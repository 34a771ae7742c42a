"""Score networks against primate visual-cortex data, and report: extraction, benchmarks (RSA,
neural predictivity, Brain-Score), the scoring API, experiments and the comparison report.

Public API::

    from brain_benchmarks import ScoreConfig, score_models, load_benchmark, Benchmark
    from brain_benchmarks import ReportConfig, build_report
    from brain_benchmarks import load_experiment, run_experiment, MainConfig
    from brain_benchmarks import GridConfig, run_grid, LaunchSettings
"""

from nmnc._lazy import exports

__getattr__, __all__ = exports(
    __name__,
    {
        "benchmarks": ["BENCHMARKS", "Benchmark", "load_benchmark"],
        "experiment": ["Experiment", "load_experiment"],
        "extract": ["extract_features=extract"],
        "grid": ["GridConfig", "run_grid"],
        "launch": ["LaunchSettings"],
        "main": ["MainConfig", "run_experiment"],
        "models": ["resolve_model"],
        "report": ["ReportConfig", "build_report"],
        "results": ["ResultRow", "append_rows", "read_results"],
        "score": ["ScoreConfig", "score_models=score"],
    },
)
