"""One user's row of a Feast feature service, read straight from the online store.

``FeatureStore.get_online_features`` plans every call anew (registry lookups, entity grouping, a response
protobuf, then ``to_dict``): for ``/recommend``'s one user that planning cost more than the read itself (py-spy of
a serving worker under load: Feast 28% of the worker's time, its ``online_read`` 11.5%). ``ServiceReader`` plans
once, when the service starts, and per call runs the same provider's ``online_read`` for each feature view of the
service and converts the values with Feast's own ``feast_value_type_to_python_type`` and the views' types. Its
row equals ``get_online_features(features=service, entity_rows=[{join_key: key}]).to_dict()`` (one value per
name; ``tests/integration/test_feature_store.py`` compares them on every user, known or not, for SQLite and
Redis). A service with on-demand views is refused: those are computed by ``get_online_features``.
"""

from __future__ import annotations

from feast import FeatureService, FeatureStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import feast_value_type_to_python_type


class ServiceReader:
    """Rows of ``service`` by one string join key (``user_id``), planned once."""

    def __init__(self, store: FeatureStore, service: FeatureService, join_key: str = "user_id"):
        on_demand = {view.name for view in store.list_on_demand_feature_views(allow_cache=True)}
        if any(projection.name in on_demand for projection in service.feature_view_projections):
            raise ValueError(f"feature service {service.name} has on-demand views: use get_online_features")
        self.store, self.join_key = store, join_key
        self.provider = store._get_provider()  # the provider get_online_features itself reads through
        self.views = []
        for projection in service.feature_view_projections:
            view = store.get_feature_view(projection.name, allow_registry_cache=True)
            names = [field.name for field in projection.features]
            types = {field.name: field.dtype.to_value_type() for field in view.features}
            self.views.append((view, names, [types[name] for name in names]))

    def row(self, key: str) -> dict:
        """``{join_key: key, feature: value, ...}``; every value None when the store has no row for ``key``."""
        entity = EntityKey(join_keys=[self.join_key], entity_values=[Value(string_val=key)])
        out: dict = {self.join_key: key}
        for view, names, types in self.views:
            ((_, values),) = self.provider.online_read(self.store.config, view, [entity], names)
            values = values or {}
            for name, value_type in zip(names, types):
                value = values.get(name)
                out[name] = None if value is None else feast_value_type_to_python_type(value, value_type)
        return out
