"""A raw-InfluxQL dataquery for grafana-foundation-sdk, which ships no InfluxDB query builder."""

from __future__ import annotations

from typing import Any, Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import plugins as cogplugins
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import DataSourceRef

DATASOURCE_TYPE = "influxdb"
DATASOURCE_UID = "gumei-influxdb"
DATASOURCE_NAME = "Gumei InfluxDB"

ResultFormat = Literal["time_series", "table"]


def datasource_ref() -> DataSourceRef:
    """The reference every panel and variable uses: the provisioned InfluxDB data source."""
    return DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)


class InfluxQLQuery(cogvariants.Dataquery):
    """One Grafana InfluxDB target in raw mode (rawQuery: true), as Grafana's InfluxQL editor saves it."""

    def __init__(
        self,
        ref_id: str = "A",
        query: str = "",
        result_format: ResultFormat = "time_series",
        alias: str | None = None,
        hide: bool | None = None,
    ) -> None:
        self.ref_id = ref_id
        self.query = query
        self.result_format = result_format
        self.alias = alias
        self.hide = hide

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "datasource": {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID},
            "query": self.query,
            "rawQuery": True,
            "resultFormat": self.result_format,
        }
        if self.alias is not None:
            payload["alias"] = self.alias
        if self.hide is not None:
            payload["hide"] = self.hide
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        unknown = set(data) - {
            "refId",
            "datasource",
            "query",
            "rawQuery",
            "resultFormat",
            "alias",
            "hide",
        }
        if unknown:
            raise ValueError(f"unexpected InfluxQL target keys: {sorted(unknown)}")
        if data.get("rawQuery") is not True:
            raise ValueError("InfluxQL target must be a raw query (rawQuery: true)")
        if data.get("resultFormat") not in ("time_series", "table"):
            raise ValueError(f"bad resultFormat {data.get('resultFormat')!r}")
        return cls(
            data["refId"], data["query"], data["resultFormat"], data.get("alias"), data.get("hide")
        )


class InfluxQL(cogbuilder.Builder[cogvariants.Dataquery]):
    """Builder for InfluxQLQuery, usable wherever the SDK takes a target builder."""

    def __init__(self, query: str, ref_id: str = "A") -> None:
        self._internal = InfluxQLQuery(ref_id=ref_id, query=query)

    def build(self) -> InfluxQLQuery:
        return self._internal

    def table(self) -> Self:
        self._internal.result_format = "table"
        return self

    def alias(self, alias: str) -> Self:
        self._internal.alias = alias
        return self


def register() -> None:
    """Register the SDK's panel plugins and this dataquery so Dashboard.from_json decodes targets."""
    cogplugins.register_default_plugins()
    cogruntime.Runtime().register_dataquery_variant(
        cogruntime.DataqueryConfig(
            identifier=DATASOURCE_TYPE, from_json_hook=InfluxQLQuery.from_json
        )
    )
