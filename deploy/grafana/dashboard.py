#!/usr/bin/env python3
"""Writes dashboards/slawatch.json, the Grafana dashboard of slawatch.

Run `python3 deploy/grafana/dashboard.py` after editing; the JSON is committed, so
Grafana (provisioned or imported through "Import dashboard") needs nothing else. The
dashboard names no fixed datasource: `__inputs` asks for one on import, and every
panel uses the `datasource` variable, so it works on any Prometheus that scrapes
slawatch. Targets for the on-time ratio (red / amber / green) are the constants
RATIO_RED and RATIO_GREEN below: edit them (or the thresholds in Grafana) to the
province's own.
"""

import json
import os

RATIO_RED = 0.90  # below: red
RATIO_GREEN = 0.95  # at or above: green; amber between

DS = {"type": "prometheus", "uid": "${datasource}"}

STATES = {
    "not_started": "Chưa tiếp nhận",
    "on_track": "Trong hạn",
    "due_soon": "Sắp đến hạn",
    "overdue": "Quá hạn",
    "paused": "Tạm dừng",
    "no_deadline": "Không có thời hạn",
}
FLAGS = {
    "late_supplement_request": "Yêu cầu bổ sung muộn",
    "multiple_supplements": "Bổ sung nhiều lần",
    "supplement_after_due": "Yêu cầu bổ sung khi đã quá hạn",
    "apology_due": "Cần văn bản xin lỗi",
    "reappointed_twice": "Hẹn lại quá một lần",
    "due_beyond_legal": "Hẹn vượt thời hạn luật định",
    "step_overdue": "Bước xử lý quá hạn",
    "returned_late": "Trả kết quả muộn",
}
OUTCOMES = {"early": "Trước hạn", "on_time": "Đúng hạn", "late": "Quá hạn"}
KINDS = {"dossier": "Hồ sơ TTHC", "task": "Nhiệm vụ", "feedback": "Phản ánh, kiến nghị"}

SEL = 'kind="$kind",unit=~"$unit"'
NAMES = "* on(unit) group_left(name) max by (unit, name) (slawatch_unit_info)"


def value_mappings(names):
    return [
        {
            "type": "value",
            "options": {k: {"text": v, "index": i} for i, (k, v) in enumerate(names.items())},
        }
    ]


def renames(names):
    """Series named by a label value (legend `{{state}}`) shown in Vietnamese."""
    return [
        {
            "matcher": {"id": "byName", "options": k},
            "properties": [{"id": "displayName", "value": v}],
        }
        for k, v in names.items()
    ]


def ratio_thresholds():
    return {
        "mode": "absolute",
        "steps": [
            {"color": "red", "value": None},
            {"color": "orange", "value": RATIO_RED},
            {"color": "green", "value": RATIO_GREEN},
        ],
    }


def count_thresholds(amber=1, red=10):
    return {
        "mode": "absolute",
        "steps": [
            {"color": "green", "value": None},
            {"color": "orange", "value": amber},
            {"color": "red", "value": red},
        ],
    }


panels = []


def panel(kind, title, description, w, h, targets, field=None, options=None, overrides=None, **extra):
    pid = len(panels) + 1
    for i, t in enumerate(targets):
        t.setdefault("refId", chr(ord("A") + i))
        t["datasource"] = DS
    p = {
        "id": pid,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"x": 0, "y": 0, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {"defaults": field or {}, "overrides": overrides or []},
        "options": options or {},
    }
    p.update(extra)
    panels.append(p)
    return p


RATIO = (
    f'sum(slawatch_on_time_cases{{{SEL},period="$period"}})'
    f' / sum(slawatch_on_time_population{{{SEL},period="$period"}})'
)

panel(
    "stat",
    "Tỷ lệ đúng hạn (chỉ số 2.1) — on-time ratio",
    "Decision 766 indicator 2.1 for the selected units and period to date: the sum of "
    "on-time cases over the sum of the population (open cases count), so any set of "
    "units is right.",
    6,
    6,
    [{"expr": RATIO, "instant": True, "legendFormat": "Tỷ lệ"}],
    field={"unit": "percentunit", "min": 0, "max": 1, "decimals": 1, "thresholds": ratio_thresholds(), "color": {"mode": "thresholds"}},
    options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background", "graphMode": "none"},
)
panel(
    "stat",
    "Điểm chỉ số 2.1 (20 × tỷ lệ) — 766 points",
    "Points of indicator 2.1 as the national portal scores it: 20 × the on-time ratio.",
    6,
    6,
    [{"expr": f"20 * ({RATIO})", "instant": True, "legendFormat": "Điểm"}],
    field={
        "unit": "none",
        "min": 0,
        "max": 20,
        "decimals": 2,
        "color": {"mode": "thresholds"},
        "thresholds": {
            "mode": "absolute",
            "steps": [
                {"color": "red", "value": None},
                {"color": "orange", "value": 20 * RATIO_RED},
                {"color": "green", "value": 20 * RATIO_GREEN},
            ],
        },
    },
    options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background", "graphMode": "none"},
)
panel(
    "stat",
    "Đúng hạn / tổng số — numerator and denominator",
    "The indicator's numerator (cases on time) and denominator (cases ended in the "
    "period or still open), so a ratio can be read with its population.",
    6,
    6,
    [
        {"expr": f'sum(slawatch_on_time_cases{{{SEL},period="$period"}})', "instant": True, "legendFormat": "Đúng hạn"},
        {"expr": f'sum(slawatch_on_time_population{{{SEL},period="$period"}})', "instant": True, "legendFormat": "Tổng số"},
    ],
    field={"unit": "none", "decimals": 0, "color": {"mode": "fixed", "fixedColor": "blue"}},
    options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value", "graphMode": "none", "textMode": "value_and_name"},
)
panel(
    "stat",
    "Đang quá hạn — open overdue",
    "Open cases past their due now, selected units.",
    6,
    6,
    [{"expr": f'sum(slawatch_cases_open{{{SEL},state="overdue"}})', "instant": True, "legendFormat": "Quá hạn"}],
    field={"unit": "none", "decimals": 0, "thresholds": count_thresholds(1, 20), "color": {"mode": "thresholds"}},
    options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background", "graphMode": "area"},
)
panel(
    "bargauge",
    "Xếp hạng đơn vị theo tỷ lệ đúng hạn — units ranked",
    f"Units by indicator 2.1 for the period to date, lowest first: red below {RATIO_RED:.0%}, "
    f"amber below {RATIO_GREEN:.0%}, green above (edit the thresholds to the province's targets).",
    12,
    14,
    [
        {
            "expr": f'sort((sum by (unit) (slawatch_on_time_cases{{{SEL},period="$period"}}) / '
            f'(sum by (unit) (slawatch_on_time_population{{{SEL},period="$period"}}) > 0)) {NAMES})',
            "instant": True,
            "legendFormat": "{{name}}",
        }
    ],
    field={"unit": "percentunit", "min": 0, "max": 1, "decimals": 1, "thresholds": ratio_thresholds(), "color": {"mode": "thresholds"}},
    options={"orientation": "horizontal", "displayMode": "basic", "showUnfilled": True, "reduceOptions": {"calcs": ["lastNotNull"]}},
)
panel(
    "bargauge",
    "Hồ sơ đang quá hạn theo đơn vị — open overdue by unit",
    "Open overdue cases per unit now, most first.",
    12,
    14,
    [
        {
            "expr": f'sort_desc(sum by (unit) (slawatch_cases_open{{{SEL},state="overdue"}}) {NAMES})',
            "instant": True,
            "legendFormat": "{{name}}",
        }
    ],
    field={"unit": "none", "decimals": 0, "min": 0, "thresholds": count_thresholds(1, 10), "color": {"mode": "thresholds"}},
    options={"orientation": "horizontal", "displayMode": "basic", "showUnfilled": True, "reduceOptions": {"calcs": ["lastNotNull"]}},
)
panel(
    "timeseries",
    "Tỷ lệ đúng hạn cuối tháng, 12 tháng — month-end on-time ratio",
    "Indicator 2.1 of each month as it stood at the month's end (recording rule "
    "slawatch:on_time_ratio:month_end, kept during the last hour of each month); before "
    "a first month-end, the month to date.",
    24,
    8,
    [
        {
            "expr": 'last_over_time(slawatch:on_time_ratio:month_end{kind="$kind"}[32d])'
            f' or (sum by (kind) (slawatch_on_time_cases{{kind="$kind",period="month"}}) / sum by (kind) (slawatch_on_time_population{{kind="$kind",period="month"}}))',
            "legendFormat": "Tỷ lệ cuối tháng",
            "interval": "1d",
        }
    ],
    field={
        "unit": "percentunit",
        "min": 0,
        "max": 1,
        "thresholds": ratio_thresholds(),
        "color": {"mode": "thresholds"},
        "custom": {"drawStyle": "bars", "fillOpacity": 60, "thresholdsStyle": {"mode": "line"}},
    },
    options={"legend": {"displayMode": "list", "placement": "bottom"}},
    timeFrom="12M",
)
panel(
    "heatmap",
    "Số ngày làm việc quá hạn theo thời gian — overdue age heatmap",
    "Open overdue cases by whole workdays past their due, over time: the histogram's "
    "cumulative buckets turned into per-bucket counts (format: heatmap), not summed.",
    12,
    9,
    [
        {
            "expr": f"sum by (le) (slawatch_overdue_age_workdays_bucket{{{SEL}}})",
            "format": "heatmap",
            "legendFormat": "{{le}}",
        }
    ],
    options={
        "calculate": False,
        "yAxis": {"unit": "none", "axisLabel": "ngày làm việc"},
        "cellValues": {"unit": "none"},
        "color": {"mode": "scheme", "scheme": "Oranges", "exponent": 0.5},
        "tooltip": {"mode": "single", "yHistogram": True},
    },
)
panel(
    "bargauge",
    "Phân bố số ngày quá hạn hiện nay — overdue age now",
    "Open overdue cases now, per bucket of workdays past the due (each case once).",
    12,
    9,
    [
        {
            "expr": f"sum by (le) (slawatch_overdue_age_workdays_bucket{{{SEL}}})",
            "format": "heatmap",
            "instant": True,
            "legendFormat": "≤ {{le}}",
        }
    ],
    field={"unit": "none", "decimals": 0, "min": 0, "thresholds": count_thresholds(1, 10), "color": {"mode": "thresholds"}},
    options={"orientation": "vertical", "displayMode": "basic", "reduceOptions": {"calcs": ["lastNotNull"]}},
)
panel(
    "timeseries",
    "Hồ sơ đang xử lý theo trạng thái — open cases by state",
    "Open cases of the selected kind and units, by state (names in Vietnamese).",
    12,
    8,
    [{"expr": f"sum by (state) (slawatch_cases_open{{{SEL}}})", "legendFormat": "{{state}}"}],
    field={"unit": "none", "decimals": 0, "custom": {"stacking": {"mode": "normal"}, "fillOpacity": 30}, "mappings": value_mappings(STATES)},
    overrides=renames(STATES),
    options={"legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull"]}},
)
panel(
    "bargauge",
    "Chưa cập nhật tiến độ theo đơn vị — stuck by unit",
    "Per unit: open cases with no progress recorded for the configured workdays, or "
    "whose current step is past its own due; most first.",
    6,
    8,
    [{"expr": f"sort_desc(sum by (unit) (slawatch_cases_stuck{{{SEL}}}) {NAMES})", "instant": True, "legendFormat": "{{name}}"}],
    field={"unit": "none", "decimals": 0, "min": 0, "thresholds": count_thresholds(1, 10), "color": {"mode": "thresholds"}},
    options={"orientation": "horizontal", "displayMode": "basic", "reduceOptions": {"calcs": ["lastNotNull"]}},
)
panel(
    "table",
    "Gắn cờ theo đơn vị — flagged by unit",
    "Per unit and compliance flag (SPEC §4.8): open cases carrying it (zeros hidden).",
    6,
    8,
    [{"expr": f"sum by (unit, flag) (slawatch_cases_flagged{{{SEL}}}) {NAMES}", "instant": True, "format": "table"}],
    field={"mappings": value_mappings(FLAGS)},
    transformations=[
        {"id": "filterByValue", "options": {"type": "exclude", "match": "any", "filters": [{"fieldName": "Value", "config": {"id": "equal", "options": {"value": 0}}}]}},
        {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": {"name": "Đơn vị", "unit": "Mã", "flag": "Cờ", "Value": "Số hồ sơ"}}},
    ],
    options={"showHeader": True, "sortBy": [{"displayName": "Số hồ sơ", "desc": True}]},
)
panel(
    "piechart",
    "Đã giải quyết theo kết quả — finished by outcome",
    "Cases ended in the dashboard's time range by outcome, from the counter "
    "slawatch_cases_finished_total (increase over the range).",
    8,
    8,
    [{"expr": f"sum by (outcome) (increase(slawatch_cases_finished_total{{{SEL}}}[$__range]))", "instant": True, "legendFormat": "{{outcome}}"}],
    field={"unit": "none", "decimals": 0},
    overrides=renames(OUTCOMES)
    + [
        {"matcher": {"id": "byName", "options": k}, "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": c}}]}
        for k, c in [("early", "green"), ("on_time", "blue"), ("late", "red")]
    ],
    options={"legend": {"displayMode": "table", "placement": "right", "values": ["value", "percent"]}, "pieType": "donut", "reduceOptions": {"calcs": ["lastNotNull"]}},
)
panel(
    "stat",
    "Nguồn dữ liệu — sources",
    "Each source's last poll: up or failing.",
    8,
    8,
    [{"expr": "max by (source) (slawatch_source_up)", "instant": True, "legendFormat": "{{source}}"}],
    field={
        "mappings": [{"type": "value", "options": {"1": {"text": "Hoạt động", "color": "green", "index": 0}, "0": {"text": "Lỗi", "color": "red", "index": 1}}}],
        "thresholds": {"mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}]},
        "color": {"mode": "thresholds"},
    },
    options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background", "graphMode": "none", "textMode": "value_and_name"},
)
panel(
    "stat",
    "Lần đồng bộ thành công gần nhất — since last success",
    "Time since each source's last successful poll or delivery.",
    8,
    8,
    [{"expr": "time() - max by (source) (slawatch_source_last_success_timestamp_seconds)", "instant": True, "legendFormat": "{{source}}"}],
    field={"unit": "s", "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "orange", "value": 1800}, {"color": "red", "value": 3600}]}, "color": {"mode": "thresholds"}},
    options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background", "graphMode": "none", "textMode": "value_and_name"},
)
panel(
    "timeseries",
    "Thư cảnh báo chờ gửi và thư hỏng — outbox",
    "E-mails waiting in the outbox, and dead letters (every attempt failed: fix the "
    "cause, then `slawatch notify requeue`).",
    12,
    8,
    [
        {"expr": "sum by (channel) (slawatch_outbox_pending)", "legendFormat": "Chờ gửi ({{channel}})"},
        {"expr": "sum by (channel) (slawatch_outbox_dead_letters)", "legendFormat": "Thư hỏng ({{channel}})"},
    ],
    field={"unit": "none", "decimals": 0, "min": 0},
    options={"legend": {"displayMode": "list", "placement": "bottom"}},
)
panel(
    "timeseries",
    "Bản ghi đã nhận mỗi phút — records ingested",
    "Records read from each source per minute, by result.",
    12,
    8,
    [{"expr": "sum by (source, result) (rate(slawatch_ingest_records_total[5m])) * 60", "legendFormat": "{{source}} {{result}}"}],
    field={"unit": "none", "min": 0},
    options={"legend": {"displayMode": "list", "placement": "bottom"}},
)

# Lay the panels out left to right, top to bottom on the 24-column grid.
x = y = row_h = 0
for p in panels:
    g = p["gridPos"]
    if x + g["w"] > 24:
        x, y, row_h = 0, y + row_h, 0
    g["x"], g["y"] = x, y
    x += g["w"]
    row_h = max(row_h, g["h"])

dashboard = {
    "__inputs": [
        {
            "name": "DS_PROMETHEUS",
            "label": "Prometheus",
            "description": "The Prometheus that scrapes slawatch",
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }
    ],
    "__requires": [
        {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
        {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
        {"type": "panel", "id": "stat", "name": "Stat", "version": ""},
        {"type": "panel", "id": "bargauge", "name": "Bar gauge", "version": ""},
        {"type": "panel", "id": "timeseries", "name": "Time series", "version": ""},
        {"type": "panel", "id": "heatmap", "name": "Heatmap", "version": ""},
        {"type": "panel", "id": "table", "name": "Table", "version": ""},
        {"type": "panel", "id": "piechart", "name": "Pie chart", "version": ""},
    ],
    "uid": "slawatch-overview",
    "title": "slawatch — tổng quan tỉnh",
    "description": "Decision 766 indicator 2.1, overdue work, flags and sources of a province, from slawatch's metrics.",
    "tags": ["slawatch", "tthc", "766"],
    "timezone": "Asia/Ho_Chi_Minh",
    "schemaVersion": 39,
    "version": 2,
    "editable": True,
    "refresh": "1m",
    "time": {"from": "now-7d", "to": "now"},
    "annotations": {"list": []},
    "templating": {
        "list": [
            {
                "name": "datasource",
                "label": "Nguồn dữ liệu",
                "type": "datasource",
                "query": "prometheus",
                "current": {"text": "${DS_PROMETHEUS}", "value": "${DS_PROMETHEUS}"},
                "hide": 0,
                "refresh": 1,
            },
            {
                "name": "kind",
                "label": "Loại",
                "type": "custom",
                "query": ",".join(f"{v} : {k}" for k, v in KINDS.items()),
                "options": [
                    {"text": v, "value": k, "selected": k == "dossier"} for k, v in KINDS.items()
                ],
                "current": {"text": KINDS["dossier"], "value": "dossier"},
                "multi": False,
                "includeAll": False,
            },
            {
                "name": "period",
                "label": "Kỳ",
                "type": "custom",
                "query": "Tháng : month,Quý : quarter,Năm : year",
                "options": [
                    {"text": "Tháng", "value": "month", "selected": True},
                    {"text": "Quý", "value": "quarter", "selected": False},
                    {"text": "Năm", "value": "year", "selected": False},
                ],
                "current": {"text": "Tháng", "value": "month"},
                "multi": False,
                "includeAll": False,
            },
            {
                "name": "unit",
                "label": "Đơn vị",
                "type": "query",
                "datasource": DS,
                # Names shown, codes selected: the regex takes the text and the value
                # from each slawatch_unit_info series (labels come sorted: name before
                # unit).
                "query": {"query": "query_result(slawatch_unit_info)", "refId": "units"},
                "definition": "query_result(slawatch_unit_info)",
                "regex": '/name="(?<text>[^"]*)".*unit="(?<value>[^"]*)"/',
                "multi": True,
                "includeAll": True,
                "allValue": ".*",
                "current": {"text": "All", "value": "$__all"},
                "refresh": 2,
                "sort": 1,
            },
        ]
    },
    "panels": panels,
}

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dashboards", "slawatch.json")
with open(out, "w", encoding="utf-8") as f:
    json.dump(dashboard, f, ensure_ascii=False, indent=2)
    f.write("\n")
print(f"wrote {out}: {len(panels)} panels")
