"""DemoFusion without a WebUI: a small driver with its own samplers and SD noise schedule (benchmarks, tests,
other hosts). The engine does not depend on it; it depends on the engine."""
