#include "runtime/self_draft.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/strings.h"
#include "kv/disk_kv.h"
#include "storage/file.h"
#include "tensor/dequant.h"
#include "tensor/quantize.h"

namespace spool::runtime {

namespace {

constexpr char kMagic[8] = {'S', 'P', 'O', 'O', 'L', 'S', 'D', '1'};
constexpr uint64_t kAlign = 4096;
constexpr uint64_t kMaxHeader = 64ull << 20;

uint64_t AlignUp(uint64_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

// Float or quantised matrices; never raw bytes (U8: gpt-oss's MXFP4 blocks/scales, copied as they are).
bool Quantisable(const formats::TensorInfo& t) {
  return t.shape.size() >= 2 && t.cols() % 32 == 0 && t.dtype != DType::kU8 && t.dtype != DType::kI32;
}

// The copy's tensor index for `target` (offsets relative to the data start).
std::vector<formats::TensorInfo> Layout(const formats::ModelSource& target, DType type) {
  std::vector<formats::TensorInfo> out;
  uint64_t off = 0;
  for (const auto& t : target.tensors) {
    formats::TensorInfo c = t;
    c.file_index = 0;
    if (Quantisable(t)) {
      c.dtype = type;
      c.nbytes = *DTypeBytes(type, static_cast<int64_t>(t.n_elements()));
    }
    c.offset = off;
    off = AlignUp(off + c.nbytes);
    out.push_back(std::move(c));
  }
  return out;
}

// The header as JSON (the copy's identity and index).
nlohmann::json HeaderJson(const std::string& fingerprint, DType type, const std::vector<formats::TensorInfo>& ts) {
  nlohmann::json j;
  j["fingerprint"] = fingerprint;
  j["type"] = std::string(DTypeName(type));
  j["tensors"] = nlohmann::json::array();
  for (const auto& t : ts)
    j["tensors"].push_back({{"name", t.name}, {"dtype", static_cast<int>(t.dtype)}, {"shape", t.shape}, {"offset", t.offset},
                            {"nbytes", t.nbytes}});
  return j;
}

// The data start for a header of `len` bytes.
uint64_t DataStart(uint64_t header_len) { return AlignUp(16 + header_len); }

// Reads and checks an existing copy; its tensors with absolute offsets, or an error
// (then it is rebuilt).
Result<std::vector<formats::TensorInfo>> ReadCopy(const std::string& path, const std::string& fingerprint, DType type,
                                                  const std::vector<formats::TensorInfo>& want) {
  SPOOL_ASSIGN_OR_RETURN(storage::File f, storage::File::Open(path));
  char magic[8];
  uint64_t len = 0;
  if (f.size() < 16) return InvalidFile(path + ": too short");
  SPOOL_TRY(f.ReadAt(magic, 0, 8));
  SPOOL_TRY(f.ReadAt(&len, 8, 8));
  if (std::memcmp(magic, kMagic, 8) != 0 || len > kMaxHeader || 16 + len > f.size())
    return InvalidFile(path + ": not a self-draft file");
  std::string text(len, '\0');
  SPOOL_TRY(f.ReadAt(text.data(), 16, len));
  if (text != HeaderJson(fingerprint, type, want).dump()) return InvalidFile(path + ": made for another model or type");
  std::vector<formats::TensorInfo> out = want;
  const uint64_t base = DataStart(len);
  for (auto& t : out) {
    t.offset += base;
    if (t.offset + t.nbytes > f.size()) return InvalidFile(path + ": truncated");
  }
  return out;
}

Status WriteCopy(const formats::ModelSource& target, const std::string& fingerprint, DType type,
                 const std::vector<formats::TensorInfo>& layout, const std::string& path) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  std::FILE* out = std::fopen(tmp.c_str(), "wb");
  if (!out) return IoError(tmp + ": cannot create: " + std::strerror(errno));
  auto fail = [&](const std::string& what) {
    std::fclose(out);
    std::remove(tmp.c_str());
    return IoError(tmp + ": " + what);
  };
  const std::string header = HeaderJson(fingerprint, type, layout).dump();
  const uint64_t len = header.size();
  std::vector<uint8_t> pad(kAlign, 0);
  if (std::fwrite(kMagic, 1, 8, out) != 8 || std::fwrite(&len, 8, 1, out) != 1 ||
      std::fwrite(header.data(), 1, len, out) != len)
    return fail("write failed");
  uint64_t pos = 16 + len;
  const uint64_t base = DataStart(len);
  std::vector<storage::File> files;
  for (const auto& name : target.files) {
    auto f = storage::File::Open(name);
    if (!f.ok()) return fail("reading " + name + ": " + f.status().message());
    files.push_back(std::move(*f));
  }
  std::vector<uint8_t> src, dst;
  std::vector<float> row;
  for (size_t i = 0; i < target.tensors.size(); ++i) {
    const formats::TensorInfo& t = target.tensors[i];
    const formats::TensorInfo& c = layout[i];
    while (pos < base + c.offset) {
      const uint64_t n = std::min<uint64_t>(kAlign, base + c.offset - pos);
      if (std::fwrite(pad.data(), 1, n, out) != n) return fail("write failed");
      pos += n;
    }
    const storage::File& f = files[t.file_index];
    if (c.dtype == t.dtype) {  // copied as is, in pieces
      for (uint64_t done = 0; done < t.nbytes;) {
        const uint64_t n = std::min<uint64_t>(t.nbytes - done, 8ull << 20);
        src.resize(n);
        if (Status st = f.ReadAt(src.data(), t.offset + done, n); !st.ok()) return fail(st.message());
        if (std::fwrite(src.data(), 1, n, out) != n) return fail("write failed");
        done += n;
      }
    } else {  // rows: dequantise to f32, quantise
      const int64_t cols = static_cast<int64_t>(t.cols()), rows = static_cast<int64_t>(t.rows());
      const uint64_t in_row = *DTypeBytes(t.dtype, cols), out_row = *DTypeBytes(c.dtype, cols);
      const int64_t per = std::max<int64_t>(1, static_cast<int64_t>((8ull << 20) / std::max<uint64_t>(in_row, 1)));
      row.resize(static_cast<size_t>(cols));
      for (int64_t r0 = 0; r0 < rows; r0 += per) {
        const int64_t m = std::min(per, rows - r0);
        src.resize(in_row * m);
        dst.resize(out_row * m);
        if (Status st = f.ReadAt(src.data(), t.offset + in_row * r0, in_row * m); !st.ok()) return fail(st.message());
        for (int64_t r = 0; r < m; ++r) {
          DequantizeRow(t.dtype, src.data() + in_row * r, row.data(), cols);
          QuantizeWeightRow(c.dtype, row.data(), cols, dst.data() + out_row * r);
        }
        if (std::fwrite(dst.data(), 1, dst.size(), out) != dst.size()) return fail("write failed (disk full?)");
      }
    }
    pos += c.nbytes;
  }
  if (std::fflush(out) != 0 || ::fsync(::fileno(out)) != 0) return fail("write failed");
  if (std::fclose(out) != 0) {
    std::remove(tmp.c_str());
    return IoError(tmp + ": write failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return IoError(path + ": cannot rename the new self-draft into place: " + std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace

bool ParseSelfDraft(const std::string& spec, DType* type) {
  if (spec == "self" || spec == "self:q8_0") {
    *type = DType::kQ8_0;
    return true;
  }
  if (spec == "self:q4_0") {
    *type = DType::kQ4_0;
    return true;
  }
  return false;
}

Result<formats::ModelSource> OpenSelfDraft(const formats::ModelSource& target, const std::string& fingerprint, DType type,
                                           const std::string& dir, bool* built) {
  if (type != DType::kQ8_0 && type != DType::kQ4_0) return InvalidArgument("a self-draft is Q8_0 or Q4_0");
  if (built) *built = false;
  SPOOL_TRY(kv::MakeDirs(dir));
  const std::string path = dir + "/" + fingerprint + "-" + std::string(DTypeName(type)) + ".spd";
  const std::vector<formats::TensorInfo> layout = Layout(target, type);
  auto tensors = ReadCopy(path, fingerprint, type, layout);
  if (!tensors.ok()) {
    SPOOL_TRY(WriteCopy(target, fingerprint, type, layout, path));
    if (built) *built = true;
    tensors = ReadCopy(path, fingerprint, type, layout);
    if (!tensors.ok()) return IoError(path + ": the self-draft just written does not read back: " + tensors.status().message());
  }
  formats::ModelSource s = target;
  s.display_name = target.display_name + " (self-draft " + std::string(DTypeName(type)) + ")";
  s.files = {path};
  s.tensors = std::move(*tensors);
  s.BuildTensorIndex();
  return s;
}

}  // namespace spool::runtime
