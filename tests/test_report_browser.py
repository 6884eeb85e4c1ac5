"""The HTML report in a real headless Chromium: every figure renders with a non-zero size.

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package
(``apt-get install -y chromium chromium-driver``; ``pip install selenium``).
Without them the test is skipped, naming what is missing.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from diffkit.report import render

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and Path(p).exists()), None)
DRIVER = shutil.which("chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage")


@pytest.fixture()
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("headless Chromium is not installed (apt-get install -y chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_every_figure_renders_with_nonzero_size(browser, tmp_path):
    from test_report import fixture_data  # the same contract-shaped fixture as the other report tests

    out = render(fixture_data(), tmp_path / "reports")
    pngs = sorted(p.stem for p in (out / "figures").glob("*.png"))
    assert len(pngs) == 7  # accuracy, step size, Figure 3, cost, swell, Table 1, stability
    browser.get((out / "index.html").as_uri())
    sizes = browser.execute_script("""
        return Array.from(document.querySelectorAll('figure img')).map(img => {
            const box = img.getBoundingClientRect();
            return {id: img.closest('figure').id, complete: img.complete, natural: [img.naturalWidth,
                    img.naturalHeight], shown: [box.width, box.height]};
        });""")
    assert sorted(s["id"] for s in sizes) == [f"fig-{name}" for name in pngs]
    for s in sizes:
        assert s["complete"] and min(s["natural"]) > 0 and min(s["shown"]) > 0, s
    headings = browser.execute_script("return Array.from(document.querySelectorAll('h2')).map(h => h.textContent)")
    assert [h.split(".")[0] for h in headings] == [str(k) for k in range(1, 13)]  # sections 1-12


# The numbers the seeds print on their circuits (seed 000's circuit, the neuron of seeds 000/001, seed 003's chain)
SEED_NUMBERS = {"graph_seed_circuit": {"-2", "5", "-4", "3", "-12"},
                "graph_seed_sigmoid_neuron": {"0.73", "0.20", "-0.20", "0.39", "-0.39", "-0.59"},
                "graph_seed_relu_chain": {"80", "8", "4"}, "graph_gate_patterns": {"-8", "6", "2", "0", "-20"}}


def test_section_2_graphs_render_inline_with_the_seeds_numbers(browser, tmp_path):
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed (apt-get install graphviz)")
    from test_report import fixture_data

    out = render(fixture_data(), tmp_path / "reports")
    browser.get((out / "index.html").as_uri())
    graphs = browser.execute_script("""
        return Array.from(document.querySelectorAll('figure.graph')).map(fig => {
            const svg = fig.querySelector('svg'), box = svg.getBoundingClientRect();
            return {id: fig.id, shown: [box.width, box.height],
                    texts: Array.from(svg.querySelectorAll('text')).map(t => t.textContent.trim())};
        });""")
    assert sorted(g["id"] for g in graphs) == sorted(f"fig-{name}" for name in [*SEED_NUMBERS, "graph_logistic_map",
                                                                                 "graph_sigmoid_neuron_gates"])
    for g in graphs:
        assert min(g["shown"]) > 0, g["id"]
        missing = SEED_NUMBERS.get(g["id"][len("fig-"):], set()) - set(g["texts"])
        assert not missing, (g["id"], missing)
