"""nbgrader's ``CheckCellMetadata``, with the metadata schema checked and compiled once.

nbgrader validates each cell's nbgrader metadata with ``jsonschema.validate(metadata, schema)``,
which first validates the schema itself against JSON Schema's meta-schema: 90% of the check's
time, ~0.09 s per notebook, paid twice per student in every ``nbgrader autograde`` (sanitize, then
autograde). The checks and their errors are nbgrader's own; only the schema's self-check is
done once per process.
"""

from __future__ import annotations

import traceback

import jsonschema
from jsonschema.exceptions import best_match
from nbgrader.nbgraderformat import MetadataValidator, SchemaTooNewError, SchemaTooOldError, ValidationError
from nbgrader.nbgraderformat.common import BaseMetadataValidator
from nbgrader.preprocessors import CheckCellMetadata


class _SchemaCompiledOnce(BaseMetadataValidator):
    """``BaseMetadataValidator.validate_cell`` with the schema's validator made once."""

    _validators: dict[int, jsonschema.protocols.Validator] = {}

    def validate_cell(self, cell) -> None:
        if "nbgrader" not in cell.metadata:
            return
        version = cell.metadata["nbgrader"].get("schema_version", 0)
        if version < self.schema_version:
            raise SchemaTooOldError(f"Outdated schema version: {version} (expected {self.schema_version})",
                                    version, self.schema_version)
        if version > self.schema_version:
            raise SchemaTooNewError(f"Schema version is too new: {version} (expected {self.schema_version})",
                                    version, self.schema_version)
        validator = self._validators.get(self.schema_version)
        if validator is None:
            cls = jsonschema.validators.validator_for(self.schema)
            cls.check_schema(self.schema)
            validator = self._validators[self.schema_version] = cls(self.schema)
        error = best_match(validator.iter_errors(cell.metadata["nbgrader"]))  # as jsonschema.validate
        if error is not None:
            raise error


class _Validator(MetadataValidator, _SchemaCompiledOnce):
    """nbgrader's current validator; its ``super().validate_cell`` now reaches the one above."""


class CheckCellMetadataOnce(CheckCellMetadata):
    def preprocess(self, nb, resources):
        try:
            _Validator().validate_nb(nb)
        except ValidationError:  # what nbgrader's CheckCellMetadata logs and raises
            self.log.error(traceback.format_exc())
            msg = "Notebook failed to validate; the nbgrader metadata may be corrupted."
            self.log.error(msg)
            raise ValidationError(msg)
        return nb, resources
