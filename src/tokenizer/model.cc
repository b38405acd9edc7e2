#include "tokenizer/model.h"

namespace spool::tokenizer {

bool VocabView::AppendBytes(std::string_view bytes, std::vector<int32_t>& out) const {
  for (char c : bytes)
    if (byte_ids[static_cast<uint8_t>(c)] < 0) return false;
  for (char c : bytes) out.push_back(byte_ids[static_cast<uint8_t>(c)]);
  return true;
}

Result<std::unique_ptr<Model>> CreateModel(const VocabView& vocab) {
  switch (vocab.spec->model) {
    case ModelKind::kBpe: return CreateBpeModel(vocab);
    case ModelKind::kSpm: return CreateSpmModel(vocab);
    case ModelKind::kUnigram: return CreateUnigramModel(vocab);
    case ModelKind::kWordPiece: return CreateWordPieceModel(vocab);
  }
  return InternalError("unknown model kind");
}

}  // namespace spool::tokenizer
