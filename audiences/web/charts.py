"""Plotly figures built on the server; the page loads plotly.js from our own static files.

Figures are plain dicts rendered with `validate=False`: plotly's graph_objects validation costs
~10 ms per figure, a twentieth of the browse page's budget, for properties that are fixed here.
"""

from __future__ import annotations

import uuid

import plotly.io as pio

from audiences.services.metrics import Series
from audiences.services.portal import EvaluationSummary

BLUE, PURPLE, TEAL, GREY, GREEN = "#1473e6", "#7e4ccb", "#0f9bac", "#8c96a3", "#2d9d78"
CONFIG = {"displaylogo": False, "responsive": True,
          "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
FONT = {"family": "Source Sans 3, Segoe UI, Arial, sans-serif", "size": 12}


def _html(data: list[dict], layout: dict, div_id: str) -> str:
    # A fresh id per render: htmx "settles" elements whose id survives a swap by restoring the
    # server's attributes, which would strip the classes plotly.js adds to its graph div.
    div_id = f"{div_id}-{uuid.uuid4().hex[:8]}"
    layout = {"font": FONT, "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)",
              **layout}
    return pio.to_html({"data": data, "layout": layout}, include_plotlyjs=False,
                       full_html=False, div_id=div_id, config=CONFIG, validate=False)


def evaluation_pie(summary: EvaluationSummary) -> str:
    """Audiences by update frequency (Adobe's "Evaluation summary")."""
    data = [{"type": "pie", "labels": ["Batch", "Streaming", "Edge"],
             "values": [summary.batch, summary.streaming, summary.edge], "hole": .55,
             "sort": False, "marker": {"colors": [GREY, PURPLE, TEAL]}, "textinfo": "value",
             "hovertemplate": "%{label}: %{value} audiences<extra></extra>"}]
    # The coloured badges beside the pie are its legend.
    layout = {"height": 130, "width": 150, "showlegend": False,
              "margin": {"l": 0, "r": 0, "t": 0, "b": 0}}
    return _html(data, layout, "evaluation-summary-chart")


def profiles_over_time(series: Series, *, hourly: bool) -> str:
    """Total qualified (line) and "New audience updated" (entries per bucket)."""
    x = [start.isoformat() for start in series.starts]
    data = [
        {"type": "scatter", "x": x, "y": series.total, "name": "Total qualified",
         "mode": "lines", "line": {"color": BLUE, "width": 2.5}, "fill": "tozeroy",
         "fillcolor": "rgba(20,115,230,.08)"},
        {"type": "scatter", "x": x, "y": series.realized, "name": "New audience updated",
         "mode": "lines+markers", "line": {"color": GREEN, "width": 2},
         "marker": {"size": 4}},
    ]
    layout = {"height": 320, "margin": {"l": 50, "r": 20, "t": 10, "b": 40},
              "hovermode": "x unified", "legend": {"orientation": "h", "y": -0.18, "x": 0},
              "xaxis": {"showgrid": False, "type": "date",
                        "tickformat": "%H:%M\n%b %d" if hourly else "%b %d"},
              "yaxis": {"gridcolor": "#eceff3", "rangemode": "tozero"}}
    return _html(data, layout, "profiles-over-time-chart")
