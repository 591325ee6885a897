import diffusers  # noqa: F401  (parity needs the reference: a missing install must fail, not skip)


def pytest_terminal_summary(terminalreporter):
    from .harness import WORST

    if not WORST:
        return
    terminalreporter.write_sep("-", "parity: cases and worst error (schedulers: relative step error; generator: absolute)")
    for name in sorted(WORST):
        cases, worst = WORST[name]
        terminalreporter.write_line(f"{name:40s} {cases:5d} cases   worst {worst:.3g}")
