#include "chat/reasoning.h"

#include <algorithm>
#include <initializer_list>

#include <nlohmann/json.hpp>

#include "base/json_input.h"
#include "tokenizer/tokenizer.h"

namespace spool::chat {
namespace {

constexpr std::string_view kThinkOpen = "<think>";
constexpr std::string_view kThinkClose = "</think>";
constexpr std::string_view kToolOpen = "<tool_call>";
constexpr std::string_view kToolClose = "</tool_call>";
constexpr std::string_view kStart = "<|start|>";
constexpr std::string_view kChannel = "<|channel|>";
constexpr std::string_view kMessage = "<|message|>";
constexpr std::string_view kEnd = "<|end|>";
constexpr std::string_view kReturn = "<|return|>";
constexpr std::string_view kCall = "<|call|>";

bool IsSpace(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

// The earliest marker in `text`: its position and which one (npos if none).
struct Found {
  size_t pos = std::string::npos;
  std::string_view marker;
};
Found FindFirst(std::string_view text, std::initializer_list<std::string_view> markers) {
  Found f;
  for (std::string_view m : markers) {
    if (m.empty()) continue;
    size_t p = text.find(m);
    if (p < f.pos) f = Found{p, m};
  }
  return f;
}

// Length of the longest suffix of `text` that is a proper prefix of a marker: it may
// become a marker when the next chunk arrives, so it is held back.
size_t HeldBack(std::string_view text, std::initializer_list<std::string_view> markers) {
  size_t hold = 0;
  for (std::string_view m : markers) {
    if (m.empty()) continue;
    for (size_t k = std::min(m.size() - 1, text.size()); k > hold; --k)
      if (text.substr(text.size() - k) == m.substr(0, k)) {
        hold = k;
        break;
      }
  }
  return hold;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

// A harmony header's word after `key` (up to whitespace or the next marker).
std::string HeaderWord(std::string_view header, std::string_view key, bool last) {
  size_t p = last ? header.rfind(key) : header.find(key);
  if (p == std::string::npos) return "";
  p += key.size();
  while (p < header.size() && IsSpace(header[p])) ++p;
  size_t e = p;
  while (e < header.size() && !IsSpace(header[e]) && header[e] != '<') ++e;
  return std::string(header.substr(p, e - p));
}

// Model output is untrusted: the bounded parser (depth, value count) first.
bool ParseObject(std::string_view text, nlohmann::ordered_json* out) {
  auto parsed = ParseJsonBounded(text, "tool call");
  if (!parsed.ok() || !parsed->is_object()) return false;
  *out = std::move(parsed).value();
  return true;
}

}  // namespace

Result<ReasoningFormat> ParseReasoningFormat(std::string_view name) {
  if (name == "auto") return ReasoningFormat::kAuto;
  if (name == "none") return ReasoningFormat::kNone;
  if (name == "think" || name == "deepseek" || name == "qwen3") return ReasoningFormat::kThink;
  if (name == "harmony" || name == "gpt-oss") return ReasoningFormat::kHarmony;
  return InvalidArgument("reasoning format must be one of auto, none, think, harmony; got '" + std::string(name) + "'");
}

const char* ReasoningFormatName(ReasoningFormat format) {
  switch (format) {
    case ReasoningFormat::kAuto: return "auto";
    case ReasoningFormat::kNone: return "none";
    case ReasoningFormat::kThink: return "think";
    case ReasoningFormat::kHarmony: return "harmony";
  }
  return "none";
}

ReasoningFormat DetectReasoningFormat(std::string_view chat_template, const tokenizer::Tokenizer* tok) {
  auto has = [tok](std::string_view t) { return tok && tok->FindToken(t) >= 0; };
  const bool template_harmony =
      chat_template.find(kChannel) != std::string_view::npos && chat_template.find(kMessage) != std::string_view::npos;
  if (template_harmony || (has(kChannel) && has(kMessage) && has(kReturn))) return ReasoningFormat::kHarmony;
  const bool template_think =
      chat_template.find(kThinkOpen) != std::string_view::npos || chat_template.find(kThinkClose) != std::string_view::npos;
  if (template_think || (has(kThinkOpen) && has(kThinkClose))) return ReasoningFormat::kThink;
  return ReasoningFormat::kNone;
}

bool PromptOpensReasoning(ReasoningFormat format, std::string_view rendered_prompt) {
  if (format != ReasoningFormat::kThink) return false;
  while (!rendered_prompt.empty() && IsSpace(rendered_prompt.back())) rendered_prompt.remove_suffix(1);
  return rendered_prompt.ends_with(kThinkOpen);
}

ReasoningSplitter::ReasoningSplitter(ReasoningFormat format, SplitterOptions options)
    : format_(format == ReasoningFormat::kAuto ? ReasoningFormat::kNone : format), options_(std::move(options)) {
  switch (format_) {
    case ReasoningFormat::kThink:
      state_ = options_.start_in_reasoning ? State::kReasoningStart : State::kContentStart;
      break;
    case ReasoningFormat::kHarmony:
      state_ = State::kHarmonyHeader;
      break;
    default:
      state_ = State::kContent;
      break;
  }
}

ReasoningDelta ReasoningSplitter::Push(std::string_view text) {
  ReasoningDelta out;
  if (state_ == State::kDone) return out;
  pending_.append(text);
  Run(/*final=*/false, &out);
  return out;
}

ReasoningDelta ReasoningSplitter::Finish() {
  ReasoningDelta out;
  Run(/*final=*/true, &out);
  held_space_.clear();  // reasoning's trailing whitespace is dropped
  state_ = State::kDone;
  pending_.clear();
  return out;
}

void ReasoningSplitter::Emit(Sink sink, std::string_view text, ReasoningDelta* out) {
  if (text.empty()) return;
  switch (sink) {
    case Sink::kContent:
      content_.append(text);
      out->content.append(text);
      break;
    case Sink::kReasoning: {
      // Trailing whitespace waits: it is dropped if the reasoning ends there.
      size_t last = text.size();
      while (last > 0 && IsSpace(text[last - 1])) --last;
      if (last == 0) {
        held_space_.append(text);
        return;
      }
      std::string piece = held_space_;
      piece.append(text.substr(0, last));
      held_space_.assign(text.substr(last));
      reasoning_ += piece;
      out->reasoning += piece;
      break;
    }
    case Sink::kToolArgs:
      buffer_.append(text);
      break;
    case Sink::kDiscard:
      break;
  }
}

void ReasoningSplitter::AddToolCall(std::string name, std::string arguments, ReasoningDelta* out) {
  ToolCall call{options_.id_prefix + std::to_string(tool_calls_.size()), std::move(name), std::move(arguments)};
  tool_calls_.push_back(call);
  out->tool_calls.push_back(std::move(call));
}

// Qwen/Hermes: {"name": "...", "arguments": {...} | "json text"} ("parameters" too).
bool ReasoningSplitter::EndToolCall(bool terminated, ReasoningDelta* out) {
  nlohmann::ordered_json call;
  bool ok = terminated && ParseObject(Trim(buffer_), &call);
  std::string name, arguments = "{}";
  if (ok) {
    auto n = call.find("name");
    ok = n != call.end() && n->is_string() && !n->get<std::string>().empty();
    if (ok) name = n->get<std::string>();
    auto a = call.find("arguments");
    if (a == call.end()) a = call.find("parameters");
    if (ok && a != call.end() && !a->is_null()) {
      nlohmann::ordered_json args;
      if (a->is_object()) arguments = a->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      else if (a->is_string() && ParseObject(a->get<std::string>(), &args)) arguments = a->get<std::string>();
      else ok = false;
    }
  }
  if (ok) {
    think_seen_ = true;  // no reasoning block opens after a call
    AddToolCall(std::move(name), std::move(arguments), out);
  } else {
    std::string raw = std::string(kToolOpen) + buffer_;
    if (terminated) raw += kToolClose;
    Emit(Sink::kContent, raw, out);
  }
  buffer_.clear();
  return ok;
}

// The header (role, channel, recipient, content type) decides where the body goes.
void ReasoningSplitter::StartHarmonyBody() {
  const std::string channel = HeaderWord(buffer_, kChannel, /*last=*/true);
  const std::string recipient = HeaderWord(buffer_, "to=", /*last=*/false);
  recipient_.clear();
  if (options_.parse_tool_calls && recipient.rfind("functions.", 0) == 0 && recipient.size() > 10) {
    recipient_ = recipient.substr(10);
    body_sink_ = Sink::kToolArgs;
  } else if (channel == "analysis" && recipient.empty()) {
    body_sink_ = Sink::kReasoning;
  } else {
    body_sink_ = Sink::kContent;  // final, commentary preambles, unknown channels
  }
  buffer_.clear();
  state_ = State::kHarmonyBody;
}

void ReasoningSplitter::EndHarmonyMessage(ReasoningDelta* out) {
  if (body_sink_ == Sink::kToolArgs) {
    nlohmann::ordered_json args;
    const std::string_view body = Trim(buffer_);
    if (ParseObject(body, &args)) AddToolCall(recipient_, std::string(body), out);
    else Emit(Sink::kContent, buffer_, out);  // not JSON: the model's text, verbatim
  }
  if (body_sink_ == Sink::kReasoning) held_space_.clear();
  buffer_.clear();
  recipient_.clear();
  body_sink_ = Sink::kContent;
}

void ReasoningSplitter::Run(bool final, ReasoningDelta* out) {
  for (;;) {
    switch (state_) {
      case State::kDone:
        pending_.clear();
        return;

      case State::kContentStart: {
        // Leading whitespace of the answer is dropped; <think> may open here once.
        size_t i = 0;
        while (i < pending_.size() && IsSpace(pending_[i])) ++i;
        pending_.erase(0, i);
        if (pending_.empty()) return;
        const bool may_think = format_ == ReasoningFormat::kThink && !think_seen_;
        if (may_think && kThinkOpen.starts_with(std::string_view(pending_).substr(0, kThinkOpen.size())) &&
            pending_.size() < kThinkOpen.size() && !final)
          return;  // could still become <think>
        if (may_think && std::string_view(pending_).starts_with(kThinkOpen)) {
          pending_.erase(0, kThinkOpen.size());
          think_seen_ = true;
          state_ = State::kReasoningStart;
          continue;
        }
        state_ = State::kContent;
        continue;
      }

      case State::kContent: {
        const std::string_view tool = options_.parse_tool_calls ? kToolOpen : std::string_view();
        Found f = FindFirst(pending_, {tool});
        if (f.pos != std::string::npos) {
          Emit(Sink::kContent, std::string_view(pending_).substr(0, f.pos), out);
          pending_.erase(0, f.pos + f.marker.size());
          buffer_.clear();
          state_ = State::kToolCall;
          continue;
        }
        const size_t keep = final ? 0 : HeldBack(pending_, {tool});
        Emit(Sink::kContent, std::string_view(pending_).substr(0, pending_.size() - keep), out);
        pending_.erase(0, pending_.size() - keep);
        return;
      }

      case State::kReasoningStart: {
        size_t i = 0;
        while (i < pending_.size() && IsSpace(pending_[i])) ++i;
        pending_.erase(0, i);
        if (pending_.empty()) return;
        think_seen_ = true;
        state_ = State::kReasoning;
        continue;
      }

      case State::kReasoning: {
        Found f = FindFirst(pending_, {kThinkClose});
        if (f.pos != std::string::npos) {
          Emit(Sink::kReasoning, std::string_view(pending_).substr(0, f.pos), out);
          held_space_.clear();
          pending_.erase(0, f.pos + f.marker.size());
          state_ = State::kContentStart;
          continue;
        }
        const size_t keep = final ? 0 : HeldBack(pending_, {kThinkClose});
        Emit(Sink::kReasoning, std::string_view(pending_).substr(0, pending_.size() - keep), out);
        pending_.erase(0, pending_.size() - keep);
        return;
      }

      case State::kToolCall: {
        Found f = FindFirst(pending_, {kToolClose});
        if (f.pos != std::string::npos) {
          buffer_.append(pending_, 0, f.pos);
          pending_.erase(0, f.pos + f.marker.size());
          // Whitespace between calls is dropped; after a rejected call it is text.
          state_ = EndToolCall(/*terminated=*/true, out) ? State::kContentStart : State::kContent;
          continue;
        }
        if (final) {
          buffer_ += pending_;
          pending_.clear();
          EndToolCall(/*terminated=*/false, out);
          state_ = State::kContent;
          return;
        }
        const size_t keep = HeldBack(pending_, {kToolClose});
        buffer_.append(pending_, 0, pending_.size() - keep);
        pending_.erase(0, pending_.size() - keep);
        return;
      }

      case State::kHarmonyHeader: {
        Found f = FindFirst(pending_, {kMessage, kReturn, kCall});
        if (f.pos != std::string::npos && f.marker == kMessage) {
          buffer_.append(pending_, 0, f.pos);
          pending_.erase(0, f.pos + f.marker.size());
          StartHarmonyBody();
          continue;
        }
        const bool ends = f.pos != std::string::npos || final;
        const size_t upto = f.pos != std::string::npos ? f.pos : final ? pending_.size() : pending_.size() - HeldBack(pending_, {kMessage, kReturn, kCall});
        buffer_.append(pending_, 0, upto);
        pending_.erase(0, f.pos != std::string::npos ? f.pos + f.marker.size() : upto);
        if (ends) {
          // A header that never reached <|message|>: plain text (a model that does not
          // speak harmony) is content; a partial header is dropped.
          if (buffer_.find("<|") == std::string::npos) Emit(Sink::kContent, buffer_, out);
          buffer_.clear();
          state_ = State::kDone;
          continue;
        }
        if (buffer_.size() > kMaxHarmonyHeader) {
          // Not a header after all: the text so far and what follows are content.
          std::string text = std::move(buffer_);
          buffer_.clear();
          body_sink_ = Sink::kContent;
          recipient_.clear();
          state_ = State::kHarmonyBody;
          Emit(Sink::kContent, text, out);
          continue;
        }
        return;
      }

      case State::kHarmonyBody: {
        Found f = FindFirst(pending_, {kEnd, kReturn, kCall, kStart, kChannel});
        if (f.pos != std::string::npos) {
          Emit(body_sink_, std::string_view(pending_).substr(0, f.pos), out);
          const std::string_view marker = f.marker;
          pending_.erase(0, f.pos + marker.size());
          EndHarmonyMessage(out);
          if (marker == kReturn || marker == kCall) {
            state_ = State::kDone;
          } else {
            // <|end|> closes the message; <|start|>/<|channel|> without it open the next.
            state_ = State::kHarmonyHeader;
            if (marker != kEnd) buffer_.assign(marker);
          }
          continue;
        }
        const size_t keep = final ? 0 : HeldBack(pending_, {kEnd, kReturn, kCall, kStart, kChannel});
        Emit(body_sink_, std::string_view(pending_).substr(0, pending_.size() - keep), out);
        pending_.erase(0, pending_.size() - keep);
        if (final) {
          EndHarmonyMessage(out);
          state_ = State::kDone;
        }
        return;
      }
    }
  }
}

SplitOutput SplitReasoning(ReasoningFormat format, std::string_view text, const SplitterOptions& options) {
  ReasoningSplitter s(format, options);
  s.Push(text);
  s.Finish();
  return SplitOutput{s.reasoning(), s.content(), s.tool_calls()};
}

}  // namespace spool::chat
