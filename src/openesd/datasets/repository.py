"""All SQL for datasets and their items."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select

from openesd.metadata.models import Dataset, DatasetItem
from openesd.metadata.repository import Repository


class DatasetRepository(Repository[Dataset]):
    model = Dataset

    def newest_first(self, status: str | None) -> Sequence[Dataset]:
        query = select(Dataset).order_by(Dataset.created.desc(), Dataset.name.desc())
        if status is not None:
            query = query.where(Dataset.status == status)
        return self.session.scalars(query).all()

    def items(self, name: str) -> Sequence[DatasetItem]:
        query = select(DatasetItem).where(DatasetItem.dataset_name == name).order_by(DatasetItem.sort_key)
        return self.session.scalars(query).all()

    def replace_item(self, item: DatasetItem) -> None:
        """Add the item; an older item of the same object key is dropped (its object is overwritten)."""
        self.session.execute(
            delete(DatasetItem).where(DatasetItem.dataset_name == item.dataset_name, DatasetItem.key == item.key)
        )
        self.session.add(item)
        self.session.flush()

    def delete(self, dataset: Dataset) -> None:
        self.session.execute(delete(DatasetItem).where(DatasetItem.dataset_name == dataset.name))
        self.session.delete(dataset)
        self.session.flush()
