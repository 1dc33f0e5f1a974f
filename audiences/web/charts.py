"""Plotly figures built on the server; the page loads plotly.js from our own static files."""

from __future__ import annotations

import uuid

import plotly.graph_objects as go
import plotly.io as pio

from audiences.services.metrics import Series
from audiences.services.portal import EvaluationSummary

BLUE, PURPLE, TEAL, GREY, GREEN = "#1473e6", "#7e4ccb", "#0f9bac", "#8c96a3", "#2d9d78"
CONFIG = {"displaylogo": False, "responsive": True,
          "modeBarButtonsToRemove": ["lasso2d", "select2d"]}


def _html(fig: go.Figure, div_id: str) -> str:
    # A fresh id per render: htmx "settles" elements whose id survives a swap by restoring the
    # server's attributes, which would strip the classes plotly.js adds to its graph div.
    div_id = f"{div_id}-{uuid.uuid4().hex[:8]}"
    fig.update_layout(font={"family": "Source Sans 3, Segoe UI, Arial, sans-serif", "size": 12},
                      paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)")
    return pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=div_id,
                       config=CONFIG)


def evaluation_pie(summary: EvaluationSummary) -> str:
    """Audiences by update frequency (Adobe's "Evaluation summary")."""
    labels = ["Batch", "Streaming", "Edge"]
    values = [summary.batch, summary.streaming, summary.edge]
    fig = go.Figure(go.Pie(labels=labels, values=values, hole=.55, sort=False,
                           marker={"colors": [GREY, PURPLE, TEAL]}, textinfo="value",
                           hovertemplate="%{label}: %{value} audiences<extra></extra>"))
    # The coloured badges beside the pie are its legend.
    fig.update_layout(height=130, width=150, margin={"l": 0, "r": 0, "t": 0, "b": 0},
                      showlegend=False)
    return _html(fig, "evaluation-summary-chart")


def profiles_over_time(series: Series, *, hourly: bool) -> str:
    """Total qualified (line) and "New audience updated" (entries per bucket)."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=series.starts, y=series.total, name="Total qualified",
                             mode="lines", line={"color": BLUE, "width": 2.5},
                             fill="tozeroy", fillcolor="rgba(20,115,230,.08)"))
    fig.add_trace(go.Scatter(x=series.starts, y=series.realized, name="New audience updated",
                             mode="lines+markers", line={"color": GREEN, "width": 2},
                             marker={"size": 4}))
    fig.update_layout(height=320, margin={"l": 50, "r": 20, "t": 10, "b": 40},
                      hovermode="x unified",
                      legend={"orientation": "h", "y": -0.18, "x": 0},
                      xaxis={"showgrid": False,
                             "tickformat": "%H:%M\n%b %d" if hourly else "%b %d"},
                      yaxis={"gridcolor": "#eceff3", "rangemode": "tozero"})
    return _html(fig, "profiles-over-time-chart")
