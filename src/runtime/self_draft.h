// Self-draft (speculative decoding, `--draft self[:q8_0|q4_0]`): a quantised copy of the
// target model that drafts for it. The copy is one file under $SPOOL_HOME/drafts,
// named by the target's fingerprint (kv::ModelFingerprint: file sizes, first and last
// MiB, config, tensor index) and the type, so a changed model gets a new copy; a file
// whose header does not match (other fingerprint or type, damaged) is rebuilt.
//
// File: "SPOOLSD1", u64 header length, a JSON header {fingerprint, type, tensors:
// [{name, dtype, shape, offset, nbytes}]}, then each tensor's bytes at a 4096-aligned
// offset. Matrices whose rows are whole 32-element blocks are quantised with spool's
// quantiser (tensor/quantize.h, bit-identical to gguf-py); other tensors (norms,
// biases) are copied as they are. The copy is opened as a ModelSource that keeps the
// target's metadata (GGUF keys or config.json) with the tensor index pointing into the
// file, so it runs through the same loader, planner and kernels as any model.
#pragma once

#include <string>

#include "base/dtype.h"
#include "base/status.h"
#include "formats/model_source.h"

namespace spool::runtime {

// "self" → Q8_0, "self:q8_0", "self:q4_0"; false for anything else. *type gets the type.
bool ParseSelfDraft(const std::string& spec, DType* type);

// The quantised copy of `target` (its fingerprint `fingerprint`) in `dir` (created),
// built when missing or stale (*built set). Errors: Io naming the path (reading the
// target, writing the copy), InvalidArgument for a type other than Q8_0/Q4_0.
Result<formats::ModelSource> OpenSelfDraft(const formats::ModelSource& target, const std::string& fingerprint, DType type,
                                           const std::string& dir, bool* built = nullptr);

}  // namespace spool::runtime
