"""A typed model of the Grafana dashboard JSON we generate (the subset schoolmon uses).

Plain frozen dataclasses rather than grafana-foundation-sdk builders: the SDK has no InfluxDB
query type, and its builders would still need raw dicts for InfluxQL targets. The SDK is used
in the tests instead, to check that Grafana's own types read back every key we write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Json = dict[str, Any]

DATASOURCE_UID = "schoolmon-influxdb"  # fixed in dashboards/provisioning/datasources/
DATASOURCE: Json = {"type": "influxdb", "uid": DATASOURCE_UID}
SCHEMA_VERSION = 39  # Grafana 10.4 / 11
GRID_WIDTH = 24

PanelKind = Literal["stat", "timeseries", "table", "geomap", "bargauge", "state-timeline"]


@dataclass(frozen=True)
class Target:
    """One raw InfluxQL query of a panel."""

    ref_id: str
    query: str
    fmt: Literal["time_series", "table"] = "time_series"
    alias: str | None = None  # e.g. "$tag_school": series names from tags

    def to_json(self) -> Json:
        """The target as Grafana stores it (raw InfluxQL mode)."""
        out: Json = {"refId": self.ref_id, "datasource": DATASOURCE, "rawQuery": True,
                     "query": self.query, "resultFormat": self.fmt}
        if self.alias:
            out["alias"] = self.alias
        return out


@dataclass(frozen=True)
class Step:
    """A threshold step: from ``value`` upwards the colour is ``color`` (None: the base)."""

    color: str
    value: float | None = None


@dataclass(frozen=True)
class Link:
    """A link on a panel or a table column to another dashboard."""

    title: str
    url: str

    def to_json(self) -> Json:
        """Grafana's data-link shape."""
        return {"title": self.title, "url": self.url}


@dataclass(frozen=True)
class ColumnLink:
    """A data link on every cell of one field (e.g. the school column opens its dashboard)."""

    field_name: str
    link: Link

    def to_json(self) -> Json:
        """A field override carrying the link."""
        return {"matcher": {"id": "byName", "options": self.field_name},
                "properties": [{"id": "links", "value": [self.link.to_json()]}]}


@dataclass(frozen=True)
class Dashed:
    """Draw the series whose names match ``regex`` as dashed lines (targets, not measurements)."""

    regex: str

    def to_json(self) -> Json:
        """A field override."""
        return {"matcher": {"id": "byRegexp", "options": self.regex},
                "properties": [{"id": "custom.lineStyle",
                                "value": {"fill": "dash", "dash": [10, 10]}}]}


@dataclass(frozen=True)
class ValueText:
    """Show a raw value as text in a colour (true -> up, 2 -> error)."""

    value: str
    text: str
    color: str


UP_DOWN = (ValueText("true", "up", "green"), ValueText("false", "down", "red"))
MET = (ValueText("true", "met", "green"), ValueText("false", "missed", "red"))
# PJLink ERST levels as the pjlink probe reports them.
ERROR_LEVELS = (ValueText("0", "ok", "green"), ValueText("1", "warning", "orange"),
                ValueText("2", "error", "red"))


@dataclass(frozen=True)
class JoinByField:
    """Join the frames of all queries on one field (outer join), e.g. per school."""

    field: str

    def to_json(self) -> Json:
        """Grafana's joinByField transformation."""
        return {"id": "joinByField", "options": {"byField": self.field, "mode": "outer"}}


@dataclass(frozen=True)
class Calc:
    """A new field ``alias`` = ``left`` op ``right`` (a field name or a number)."""

    alias: str
    left: str
    operator: Literal["/", "*", "-", "+"]
    right: str

    def to_json(self) -> Json:
        """Grafana's calculateField transformation in binary mode."""
        return {"id": "calculateField", "options": {
            "mode": "binary", "alias": self.alias, "replaceFields": False,
            "binary": {"left": self.left, "operator": self.operator, "right": self.right}}}


@dataclass(frozen=True)
class ConfigFromQuery:
    """Use values of query ``ref_id`` as thresholds of the others (contract and target lines)."""

    ref_id: str
    fields: tuple[str, ...]  # mapped in order to threshold<first>, threshold<first + 1>...
    first: int = 1

    def to_json(self) -> Json:
        """Grafana's configFromData transformation."""
        mappings = [{"fieldName": name, "handlerKey": f"threshold{i}"}
                    for i, name in enumerate(self.fields, start=self.first)]
        return {"id": "configFromData",
                "options": {"configRefId": self.ref_id, "mappings": mappings}}


@dataclass(frozen=True)
class Organize:
    """Hide helper columns of a table."""

    exclude: tuple[str, ...]

    def to_json(self) -> Json:
        """Grafana's organize transformation."""
        return {"id": "organize",
                "options": {"excludeByName": dict.fromkeys(self.exclude, True)}}


Transformation = JoinByField | Calc | ConfigFromQuery | Organize


@dataclass(frozen=True)
class Stat:
    """Options of a stat panel."""

    calc: str = "lastNotNull"
    color_mode: Literal["value", "background", "none"] = "value"

    def to_json(self) -> Json:
        """The panel's options."""
        return {"reduceOptions": {"calcs": [self.calc], "fields": "", "values": False},
                "colorMode": self.color_mode, "graphMode": "none", "textMode": "auto",
                "justifyMode": "auto", "orientation": "auto"}


@dataclass(frozen=True)
class Series:
    """Options of a time-series panel."""

    threshold_lines: bool = False  # draw thresholds (targets, contract) as dashed lines
    bars: bool = False

    def to_json(self) -> Json:
        """The panel's options."""
        return {"legend": {"displayMode": "table", "placement": "bottom", "showLegend": True,
                           "calcs": ["lastNotNull", "max"]},
                "tooltip": {"mode": "multi", "sort": "desc"}}

    def custom(self) -> Json:
        """fieldConfig.defaults.custom."""
        return {"drawStyle": "bars" if self.bars else "line", "lineWidth": 1,
                "fillOpacity": 60 if self.bars else 10, "spanNulls": False,
                "thresholdsStyle": {"mode": "dashed" if self.threshold_lines else "off"}}


@dataclass(frozen=True)
class Table:
    """Options of a table panel."""

    sort_by: str | None = None
    descending: bool = False

    def to_json(self) -> Json:
        """The panel's options."""
        out: Json = {"showHeader": True, "cellHeight": "sm"}
        if self.sort_by:
            out["sortBy"] = [{"displayName": self.sort_by, "desc": self.descending}]
        return out


@dataclass(frozen=True)
class Bars:
    """Options of a bar-gauge panel."""

    calc: str = "lastNotNull"

    def to_json(self) -> Json:
        """The panel's options."""
        return {"reduceOptions": {"calcs": [self.calc], "fields": "", "values": False},
                "orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True,
                "valueMode": "color", "namePlacement": "auto", "sizing": "auto"}


@dataclass(frozen=True)
class Timeline:
    """Options of a state-timeline panel."""

    def to_json(self) -> Json:
        """The panel's options."""
        return {"showValue": "never", "mergeValues": True, "rowHeight": 0.9,
                "alignValue": "left", "legend": {"displayMode": "list", "placement": "bottom",
                                                 "showLegend": True}}


@dataclass(frozen=True)
class Map:
    """Options of a geomap panel: one marker layer from lat/lon fields, coloured by a field."""

    color_field: str
    center_lat: float = 23.1
    center_lon: float = 113.3
    zoom: float = 9

    def to_json(self) -> Json:
        """The panel's options."""
        return {
            "view": {"id": "coords", "lat": self.center_lat, "lon": self.center_lon,
                     "zoom": self.zoom},
            "controls": {"showZoom": True, "mouseWheelZoom": True},
            "basemap": {"type": "default", "name": "Basemap"},
            "layers": [{
                "type": "markers", "name": "Schools", "tooltip": True,
                "location": {"mode": "coords", "latitude": "lat", "longitude": "lon"},
                "config": {"showLegend": True, "style": {
                    "size": {"fixed": 8},
                    "color": {"field": self.color_field, "fixed": "dark-green"},
                    "text": {"field": "school", "mode": "field"}}},
            }],
            "tooltip": {"mode": "details"},
        }


Options = Stat | Series | Table | Bars | Timeline | Map


@dataclass(frozen=True)
class Panel:
    """One panel; its position is assigned by :class:`Dashboard` from ``w`` and ``h``."""

    title: str
    options: Options
    targets: tuple[Target, ...]
    w: int = 12
    h: int = 8
    description: str = ""
    unit: str | None = None
    steps: tuple[Step, ...] = ()
    min: float | None = None
    max: float | None = None
    mappings: tuple[ValueText, ...] = ()
    no_value: str | None = None  # shown when a query returns nothing (e.g. "0" offline)
    links: tuple[Link, ...] = ()
    column_links: tuple[ColumnLink, ...] = ()
    dashed: tuple[Dashed, ...] = ()
    transformations: tuple[Transformation, ...] = ()

    @property
    def kind(self) -> PanelKind:
        """Grafana's panel type."""
        kinds: dict[type, PanelKind] = {Stat: "stat", Series: "timeseries", Table: "table",
                                        Bars: "bargauge", Timeline: "state-timeline",
                                        Map: "geomap"}
        return kinds[type(self.options)]

    def field_defaults(self) -> Json:
        """fieldConfig.defaults."""
        out: Json = {}
        if self.unit:
            out["unit"] = self.unit
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        if self.steps:
            out["thresholds"] = {"mode": "absolute", "steps": [
                {"color": s.color, "value": s.value} for s in self.steps]}
            out["color"] = {"mode": "thresholds"}
        if self.mappings:
            out["mappings"] = [{"type": "value", "options": {
                m.value: {"text": m.text, "color": m.color, "index": i}
                for i, m in enumerate(self.mappings)}}]
        if self.no_value is not None:
            out["noValue"] = self.no_value
        if isinstance(self.options, Series):
            out["custom"] = self.options.custom()
        return out

    def to_json(self, panel_id: int, x: int, y: int) -> Json:
        """The panel JSON at a grid position."""
        out: Json = {
            "id": panel_id, "type": self.kind, "title": self.title,
            "description": self.description, "datasource": DATASOURCE,
            "gridPos": {"h": self.h, "w": self.w, "x": x, "y": y},
            "targets": [t.to_json() for t in self.targets],
            "options": self.options.to_json(),
            "fieldConfig": {"defaults": self.field_defaults(), "overrides": [
                *(c.to_json() for c in self.column_links), *(d.to_json() for d in self.dashed)]},
        }
        if self.links:
            out["links"] = [link.to_json() for link in self.links]
        if self.transformations:
            out["transformations"] = [t.to_json() for t in self.transformations]
        return out


@dataclass(frozen=True)
class Row:
    """A full-width heading that starts a new line of panels."""

    title: str


@dataclass(frozen=True)
class Variable:
    """A template variable filled by an InfluxQL SHOW TAG VALUES query."""

    name: str
    label: str
    query: str
    multi: bool = False
    include_all: bool = False

    def to_json(self) -> Json:
        """Grafana's query-variable JSON."""
        out: Json = {"type": "query", "name": self.name, "label": self.label,
                     "datasource": DATASOURCE, "query": self.query,
                     "refresh": 1, "sort": 1, "multi": self.multi,
                     "includeAll": self.include_all, "current": {}, "options": [],
                     "hide": 0, "skipUrlSync": False}
        if self.include_all:
            # '.*' instead of a list of every value: shorter queries for a big district.
            out["allValue"] = ".*"
        return out


@dataclass(frozen=True)
class Dashboard:
    """A whole dashboard; panels are laid out left to right, wrapping at the grid width."""

    uid: str
    title: str
    description: str
    variables: tuple[Variable, ...]
    panels: tuple[Panel | Row, ...]
    tags: tuple[str, ...] = ("schoolmon",)
    time_from: str = "now-24h"

    def layout(self) -> list[Json]:
        """Panel JSON with ids and grid positions."""
        out: list[Json] = []
        x = y = row_h = 0
        for panel_id, item in enumerate(self.panels, start=1):
            if isinstance(item, Row) or x + item.w > GRID_WIDTH:
                x, y, row_h = 0, y + row_h, 0
            if isinstance(item, Row):
                out.append({"id": panel_id, "type": "row", "title": item.title,
                            "collapsed": False, "panels": [],
                            "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y}})
                y += 1
                continue
            out.append(item.to_json(panel_id, x, y))
            x, row_h = x + item.w, max(row_h, item.h)
        return out

    def to_json(self) -> Json:
        """The dashboard JSON as a provisioning file holds it."""
        return {
            "uid": self.uid, "title": self.title, "description": self.description,
            "tags": list(self.tags), "timezone": "browser", "editable": True,
            "graphTooltip": 1, "schemaVersion": SCHEMA_VERSION, "version": 1,
            "refresh": "1m", "time": {"from": self.time_from, "to": "now"},
            "templating": {"list": [v.to_json() for v in self.variables]},
            "annotations": {"list": []},
            # Every schoolmon dashboard in one menu, keeping the time range and variables.
            "links": [{"title": "schoolmon", "type": "dashboards", "tags": ["schoolmon"],
                       "asDropdown": True, "includeVars": True, "keepTime": True,
                       "targetBlank": False, "icon": "external link", "tooltip": "",
                       "url": ""}],
            "panels": self.layout(),
        }
