"""tests/robust: one seed for the run's random choices, shown in the header"""
import os
import time

os.environ.setdefault("ROBUST_SEED", str(int(time.time())))


def pytest_report_header():
    return "robust seed %s (ROBUST_SEED=%s to repeat)" % ((os.environ["ROBUST_SEED"],) * 2)
