/* SPDX-License-Identifier: Apache-2.0 */
/*
 * field_edit: the rename and remove processing stages. rename's `map`
 * gives old -> new names, applied in order: the field keeps its place and
 * value, and a field that already had the new name is removed first (the
 * configuration says which one is meant). remove's `fields` are removed,
 * every field of each name. Names absent from an event are no error.
 */
#ifndef LOGFERRY_FIELD_EDIT_H
#define LOGFERRY_FIELD_EDIT_H

#include "agent/processor.h"

extern const struct processor_type field_edit_rename_type;
extern const struct processor_type field_edit_remove_type;

#endif
