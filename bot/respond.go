package bot

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"kefu/bot/kb"
	"kefu/bot/textnorm"
	"kefu/conv"
)

// Decide applies the decision policy to ranked candidates (best first):
//
//   - answer when the top score reaches th.Answer and no other candidate is
//     within th.Margin of it;
//   - clarify with the candidates (at most maxOptions) scoring at least
//     th.Clarify when the top is not confident or others are close;
//   - fallback otherwise.
//
// It returns the action, the candidates to offer (clarify) and a reason.
func Decide(th Thresholds, cands []Candidate, maxOptions int) (Action, []Candidate, string) {
	if len(cands) == 0 || cands[0].Score < th.Clarify {
		return ActFallback, nil, "low_score"
	}
	top := cands[0].Score
	close := 1
	for close < len(cands) && top-cands[close].Score <= th.Margin && cands[close].Score >= th.Clarify {
		close++
	}
	if top >= th.Answer && close == 1 {
		return ActAnswer, cands[:1], "confident"
	}
	var opts []Candidate
	for _, c := range cands {
		if c.Score < th.Clarify || len(opts) == maxOptions {
			break
		}
		opts = append(opts, c)
	}
	if close > 1 {
		return ActClarify, opts, "close_candidates"
	}
	return ActClarify, opts, "unsure"
}

// Respond decides what to do with one customer message. It reads and
// updates the customer's Memory (pending clarify, rating prompt, misses) and
// journals every fallback, clarify, answer and handoff for curation.
func (b *Bot) Respond(ctx context.Context, q Query) (Decision, error) {
	r := b.cur.Load()
	if r == nil {
		return Decision{}, errNoKB
	}
	mem, err := b.state.Load(ctx, q.Customer)
	if err != nil {
		// Without memory the bot still answers; it only loses the context
		// of a pending choice.
		b.log.Warn("state load failed", "customer", q.Customer, "err", err)
		mem = Memory{}
	}
	text := strings.TrimSpace(q.Text)
	folded := textnorm.Fold(text)
	d, handled := b.followUp(ctx, r, q, &mem, folded)
	if !handled {
		d, err = b.fresh(ctx, r, q, &mem, text, folded)
		if err != nil {
			return Decision{}, err
		}
	}
	if err := b.state.Save(ctx, q.Customer, mem, b.cfg.StateTTL); err != nil {
		b.log.Warn("state save failed", "customer", q.Customer, "err", err)
	}
	return d, nil
}

// choice parses a numbered reply: "2", "２", "第2个", "2." → 2; "0"/"都不是" → 0.
func choice(folded string) (int, bool) {
	s := strings.TrimSpace(folded)
	s = strings.TrimPrefix(s, "第")
	s = strings.TrimRight(s, "个条项.。、) ")
	switch s {
	case "都不是", "没有", "不是":
		return 0, true
	case "一", "是", "是的", "对", "对的":
		return 1, true
	case "二":
		return 2, true
	case "三":
		return 3, true
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n < 10 {
		return n, true
	}
	return 0, false
}

// followUp handles replies to a clarify or a rating prompt.
func (b *Bot) followUp(ctx context.Context, r *retriever, q Query, mem *Memory, folded string) (Decision, bool) {
	if len(mem.Pending) > 0 {
		n, ok := choice(folded)
		if !ok {
			// A click on a menu option (MenuReply) sends the option's
			// question text back.
			for i, id := range mem.Pending {
				if e, found := r.entries[id]; found && textnorm.Fold(e.Question) == folded {
					n, ok = i+1, true
				}
			}
		}
		if !ok || n > len(mem.Pending) {
			// Not an answer to the clarify: treat as a new question.
			mem.Pending, mem.PendingQuestion = nil, ""
			return Decision{}, false
		}
		question := mem.PendingQuestion
		pending := mem.Pending
		mem.Pending, mem.PendingQuestion = nil, ""
		if n == 0 {
			b.journalAdd(ctx, Record{Kind: RecPick, Question: question, Store: string(q.Store), Customer: string(q.Customer)})
			mem.Misses++
			if mem.Misses >= b.cfg.MaxMisses {
				return b.handoffDecision(ctx, q, mem, question, "repeated_miss"), true
			}
			return Decision{Action: ActFallback, Reply: conv.Text(b.cfg.Texts.NoneOfThem), Reason: "none_of_them"}, true
		}
		id := pending[n-1]
		e, ok := r.entries[id]
		if !ok || !e.CustomerServable(string(q.Store), b.now()) {
			// Retired or changed since the options were shown.
			return Decision{}, false
		}
		b.journalAdd(ctx, Record{Kind: RecPick, Question: question, Entry: id, Store: string(q.Store), Customer: string(q.Customer)})
		return b.answer(e, question, 0, nil, mem, "picked"), true
	}
	if mem.RateEntry != "" {
		n, ok := choice(folded)
		switch {
		case ok && (n == 1 || n == 2):
		case folded == "有" || folded == "有帮助":
			n, ok = 1, true
		case folded == "没有帮助" || folded == "没帮助" || folded == "没用":
			n, ok = 2, true
		}
		entry, question := mem.RateEntry, mem.RateQuestion
		mem.RateEntry, mem.RateQuestion = "", ""
		if !ok || (n != 1 && n != 2) {
			return Decision{}, false
		}
		helpful := n == 1
		b.journalAdd(ctx, Record{Kind: RecRating, Question: question, Entry: entry, Helpful: &helpful, Store: string(q.Store), Customer: string(q.Customer)})
		if helpful {
			return Decision{Action: ActFallback, Reply: conv.Text(b.cfg.Texts.RateThanks), EntryID: entry, Reason: "rating"}, true
		}
		return Decision{Action: ActFallback, Reply: conv.Text(b.cfg.Texts.RateSorry), EntryID: entry, Reason: "rating"}, true
	}
	return Decision{}, false
}

func containsAny(s string, words []string) bool {
	for _, w := range words {
		if w != "" && strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// fresh handles a new question.
func (b *Bot) fresh(ctx context.Context, r *retriever, q Query, mem *Memory, text, folded string) (Decision, error) {
	if text == "" {
		return Decision{Action: ActFallback, Reply: conv.Text(b.cfg.Texts.Greeting), Reason: "empty"}, nil
	}
	intent := b.notHand.Replace(folded)
	if containsAny(intent, b.handoff) {
		return b.handoffDecision(ctx, q, mem, text, "explicit_request"), nil
	}
	if containsAny(intent, b.anger) {
		return b.handoffDecision(ctx, q, mem, text, "anger"), nil
	}
	cands, norm, err := r.search(ctx, text, b.customerFilter(q.Store), max(5, b.cfg.ClarifyOptions))
	if err != nil {
		return Decision{}, fmt.Errorf("bot: search: %w", err)
	}
	if norm == "" {
		// Only greetings, fillers, emoji or punctuation ("你好", "[微笑]",
		// "？"): greet back; this is not a miss and must not count towards
		// handing off.
		return Decision{Action: ActFallback, Reply: conv.Text(b.cfg.Texts.Greeting), Reason: "greeting"}, nil
	}
	act, opts, reason := Decide(b.cfg.Thresholds, cands, b.cfg.ClarifyOptions)
	top := 0.0
	if len(cands) > 0 {
		top = cands[0].Score
	}
	switch act {
	case ActAnswer:
		e := r.entries[opts[0].EntryID]
		b.journalAdd(ctx, Record{Kind: RecAnswer, Question: text, Entry: e.ID, Score: top, Candidates: cands, Store: string(q.Store), Customer: string(q.Customer)})
		return b.answer(e, text, top, cands, mem, reason), nil
	case ActClarify:
		mem.Pending = mem.Pending[:0]
		for _, c := range opts {
			mem.Pending = append(mem.Pending, c.EntryID)
		}
		mem.PendingQuestion = text
		b.journalAdd(ctx, Record{Kind: RecClarify, Question: text, Score: top, Candidates: cands, Store: string(q.Store), Customer: string(q.Customer), Reason: reason})
		return Decision{Action: ActClarify, Reply: conv.Text(b.clarifyText(opts)), Score: top, Candidates: opts, Reason: reason}, nil
	}
	mem.Misses++
	b.journalAdd(ctx, Record{Kind: RecFallback, Question: text, Score: top, Candidates: cands, Store: string(q.Store), Customer: string(q.Customer), Reason: reason})
	if mem.Misses >= b.cfg.MaxMisses {
		return b.handoffDecision(ctx, q, mem, text, "repeated_miss"), nil
	}
	return Decision{Action: ActFallback, Reply: conv.Text(b.cfg.Texts.Fallback), Score: top, Candidates: cands, Reason: reason}, nil
}

func (b *Bot) clarifyText(opts []Candidate) string {
	if len(opts) == 1 {
		return fmt.Sprintf(b.cfg.Texts.Confirm, opts[0].Question)
	}
	var sb strings.Builder
	sb.WriteString(b.cfg.Texts.ClarifyHead)
	for i, c := range opts {
		fmt.Fprintf(&sb, "\n%d. %s", i+1, c.Question)
	}
	if b.cfg.Texts.ClarifyTail != "" {
		sb.WriteString("\n" + b.cfg.Texts.ClarifyTail)
	}
	return sb.String()
}

func (b *Bot) answer(e *kb.Entry, question string, score float64, cands []Candidate, mem *Memory, reason string) Decision {
	mem.Misses = 0
	text := e.Answer
	if b.cfg.AskRating {
		text += "\n\n" + b.cfg.Texts.RatePrompt
		mem.RateEntry, mem.RateQuestion = e.ID, question
	}
	d := Decision{Action: ActAnswer, Reply: conv.Text(text), EntryID: e.ID, Score: score, Candidates: cands, Reason: reason}
	if e.Image != "" {
		d.Extra = append(d.Extra, conv.Reply{Kind: conv.ReplyImage, MediaID: e.Image})
	}
	if e.Link != "" {
		d.Extra = append(d.Extra, conv.Reply{Kind: conv.ReplyNews, Articles: []conv.Article{{Title: truncate(e.Question, 64), URL: e.Link}}})
	}
	return d
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

func (b *Bot) handoffDecision(ctx context.Context, q Query, mem *Memory, text, reason string) Decision {
	*mem = Memory{} // a human takes over: forget pending choices and misses
	b.journalAdd(ctx, Record{Kind: RecHandoff, Question: text, Store: string(q.Store), Customer: string(q.Customer), Reason: reason})
	return Decision{Action: ActHandoff, Reply: conv.Text(b.cfg.Texts.Handoff), Reason: reason}
}

// journalAdd records r; a journal failure never fails the customer's reply.
func (b *Bot) journalAdd(ctx context.Context, r Record) {
	r.ID, r.At = newID(), b.now()
	if len(r.Candidates) > 5 {
		r.Candidates = r.Candidates[:5]
	}
	if err := b.journal.Append(ctx, r); err != nil {
		b.log.Warn("journal append failed", "kind", r.Kind, "err", err)
	}
}

// MenuReply renders a clarify as a WeChat menu message (msgmenu: WeCom
// customer service, OA customer-service API) for channels that support it.
// Each option's content is the entry's question: clicking it sends that text
// back, which Respond treats as picking the option. ok is false for other
// actions.
func (b *Bot) MenuReply(d Decision) (conv.Reply, bool) {
	if d.Action != ActClarify || len(d.Candidates) == 0 {
		return conv.Reply{}, false
	}
	r := conv.Reply{Kind: conv.ReplyMenu, Head: b.cfg.Texts.ClarifyHead, Tail: b.cfg.Texts.ClarifyTail}
	for i, c := range d.Candidates {
		r.Menu = append(r.Menu, conv.MenuItem{ID: fmt.Sprintf("kefu-pick-%d", i+1), Content: c.Question})
	}
	return r, true
}
