package surveys

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"golang.org/x/text/width"
	"time"

	"kefu/conv"
	"kefu/engine"
)

// ReadAheadKeys names the keys this service reads for msg — Route's
// pending survey, and the bot contact NoteBotTurn reads once the bot has
// answered — so the gateway can read them ahead.
func (s *Service) ReadAheadKeys(msg conv.Message) []string {
	if !msg.HasText() {
		return nil
	}
	return []string{keyPending + string(msg.Customer), keyBot + string(msg.Customer)}
}

// Route is the router stage for survey answers (app.Stage). While a
// survey waits for this customer it takes the score, the reason and
// opt-outs; a clear new question releases the survey and returns
// handled=false so the bot answers it. Without a pending survey it only
// takes an exact opt-out word.
func (s *Service) Route(ctx context.Context, msg conv.Message) (replies []conv.Reply, handled bool, err error) {
	text := msg.Text
	if !msg.HasText() {
		return nil, false, nil
	}
	raw, err := s.eng.Get(ctx, keyPending+string(msg.Customer))
	if errors.Is(err, engine.ErrNotFound) {
		// Most messages land here: only an exact opt-out word is ours.
		if len(text) <= 64 && mentionsAny(text, s.cfg.OptOutWords) && ParseReply(text, s.cfg.OptOutWords).Kind == ReplyOptOut {
			if err := s.optOut(ctx, msg.Customer, ""); err != nil {
				return nil, false, err
			}
			return []conv.Reply{conv.Text(s.cfg.Question.OptOutAck)}, true, nil
		}
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	id := string(raw)
	sv, err := s.loadSurvey(ctx, id)
	if errors.Is(err, engine.ErrNotFound) {
		_, _ = s.eng.CompareAndDelete(ctx, keyPending+string(msg.Customer), raw)
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if msg.ID != "" && sv.LastMsgID == msg.ID {
		return repeatAnswer(sv)
	}
	switch sv.State {
	case StateAsked, StateSending:
		return s.onScoreReply(ctx, sv, msg)
	case StateWhy:
		return s.onReason(ctx, sv, msg)
	case StateWhen:
		return s.onContactTime(ctx, sv, msg)
	}
	_, _ = s.eng.CompareAndDelete(ctx, keyPending+string(msg.Customer), raw)
	return nil, false, nil
}

// repeatAnswer answers a redelivered message the way its first delivery
// was answered: same reply, nothing recorded twice.
func repeatAnswer(sv Survey) ([]conv.Reply, bool, error) {
	if sv.LastReply == "" {
		return nil, false, nil // it went to the bot the first time
	}
	return []conv.Reply{conv.Text(sv.LastReply)}, true, nil
}

// lostRace handles a transition another worker made first: if that worker
// handled this very message, answer as it did; otherwise the message is
// not the survey's.
func (s *Service) lostRace(ctx context.Context, id string, msg conv.Message) ([]conv.Reply, bool, error) {
	sv, err := s.loadSurvey(ctx, id)
	if err != nil {
		return nil, false, err
	}
	if msg.ID != "" && sv.LastMsgID == msg.ID {
		return repeatAnswer(sv)
	}
	return nil, false, nil
}

// menuBase is added to a score to make its msgmenu item id: OA reports
// the tap as a numeric bizmsgmenuid, so ids are 900–910.
const menuBase = 900

// menuScore reads a msgmenu tap ("908" → 8).
func menuScore(menuID string) (int, bool) {
	n, err := strconv.Atoi(menuID)
	if err != nil || n < menuBase || n > menuBase+10 {
		return 0, false
	}
	return n - menuBase, true
}

func (s *Service) onScoreReply(ctx context.Context, sv Survey, msg conv.Message) ([]conv.Reply, bool, error) {
	p := ParseReply(msg.Text, s.cfg.OptOutWords)
	if n, ok := menuScore(msg.MenuID); ok {
		p = Parsed{Kind: ReplyScore, Score: n}
	}
	now := s.now()
	switch p.Kind {
	case ReplyScore:
		return s.onScore(ctx, sv, msg, p, now)
	case ReplyOptOut:
		if err := s.finishUnanswered(ctx, sv, msg, "opted_out", s.cfg.Question.OptOutAck); err != nil {
			return nil, false, err
		}
		if err := s.optOut(ctx, msg.Customer, sv.ID); err != nil {
			return nil, false, err
		}
		return []conv.Reply{conv.Text(s.cfg.Question.OptOutAck)}, true, nil
	case ReplyQuestion:
		// The customer moved on: the survey lets go, the bot answers.
		return nil, false, s.finishUnanswered(ctx, sv, msg, "reopened", "")
	}
	if !sv.Reprompted {
		_, err := s.updateSurvey(ctx, sv.ID, func(v *Survey) error {
			if v.State != StateAsked && v.State != StateSending {
				return errNoChange
			}
			v.Reprompted, v.LastMsgID, v.LastReply = true, msg.ID, s.cfg.Question.Reprompt
			return nil
		})
		if errors.Is(err, errNoChange) {
			return s.lostRace(ctx, sv.ID, msg)
		}
		if err != nil {
			return nil, false, err
		}
		return []conv.Reply{conv.Text(s.cfg.Question.Reprompt)}, true, nil
	}
	// Asked twice without a score: stop asking, let the bot have it.
	return nil, false, s.finishUnanswered(ctx, sv, msg, "unparseable", "")
}

// finishUnanswered ends a survey without a score and releases the customer.
func (s *Service) finishUnanswered(ctx context.Context, sv Survey, msg conv.Message, reason, reply string) error {
	sv, err := s.updateSurvey(ctx, sv.ID, func(v *Survey) error {
		if v.State != StateAsked && v.State != StateSending {
			return errNoChange
		}
		v.State, v.Reason, v.LastMsgID, v.LastReply = StateUnanswered, reason, msg.ID, reply
		return nil
	})
	if errors.Is(err, errNoChange) {
		return nil
	}
	if err != nil {
		return err
	}
	_, _ = s.eng.CompareAndDelete(ctx, keyPending+string(msg.Customer), []byte(sv.ID))
	_ = s.eng.Ack(ctx, queueTimers, "exp:"+sv.ID)
	return s.unanswered(ctx, sv)
}

func (s *Service) onScore(ctx context.Context, sv Survey, msg conv.Message, p Parsed, now time.Time) ([]conv.Reply, bool, error) {
	var reply string
	handled := true
	switch {
	case p.RestIsQuestion:
		handled = false // the question after the score goes to the bot
	case p.Comment != "" && s.asksContactTime(sv, p.Score):
		reply = s.cfg.Question.ContactTime
	case p.Comment != "":
		reply = s.cfg.Question.Thanks
	default:
		reply = s.cfg.Question.FollowUp
	}
	score := p.Score
	sv, err := s.updateSurvey(ctx, sv.ID, func(v *Survey) error {
		if v.State != StateAsked && v.State != StateSending {
			return errNoChange
		}
		v.Score, v.AnsweredAt, v.Comment = &score, now, p.Comment
		v.LastMsgID, v.LastReply = msg.ID, reply
		switch reply {
		case s.cfg.Question.FollowUp:
			v.State = StateWhy
		case s.cfg.Question.ContactTime:
			v.State = StateWhen
		default:
			v.State = StateDone
		}
		return nil
	})
	if errors.Is(err, errNoChange) {
		return s.lostRace(ctx, sv.ID, msg)
	}
	if err != nil {
		return nil, false, err
	}
	if sv.State == StateDone {
		_, _ = s.eng.CompareAndDelete(ctx, keyPending+string(msg.Customer), []byte(sv.ID))
		_ = s.eng.Ack(ctx, queueTimers, "exp:"+sv.ID)
	}
	if err := s.appendRecord(ctx, s.record("answered", sv)); err != nil {
		return nil, false, err
	}
	ce := sv.Contact
	s.emit(conv.Event{Type: conv.EvSurveyAnswered, Conv: ce.Conv, Customer: ce.Customer, Store: sv.Attribution.Store, Channel: ce.Channel, Agent: ce.Agent,
		Data: map[string]string{"survey": sv.ID, "kind": sv.Kind, "score": strconv.Itoa(score), "band": Classify(score), "version": sv.Version, "has_comment": strconv.FormatBool(sv.Comment != "")}})
	switch {
	case sv.Kind == KindReSurvey:
		if err := s.recordRecovery(ctx, sv, score); err != nil {
			return nil, false, err
		}
	case score <= s.cfg.DetractorMax:
		if _, err := s.OnDetractor(ctx, sv); err != nil {
			return nil, false, err
		}
	}
	if reply == "" {
		return nil, handled, nil
	}
	return []conv.Reply{conv.Text(reply)}, handled, nil
}

// asksContactTime reports whether a detractor is asked when the manager
// may call back (PRODUCT.md §7: the alert carries it).
func (s *Service) asksContactTime(sv Survey, score int) bool {
	return s.cfg.Question.ContactTime != "" && sv.Kind == KindNPS && score <= s.cfg.DetractorMax
}

// optOutDuring ends a survey that already has its score when the customer
// says 退订 to a follow-up question.
func (s *Service) optOutDuring(ctx context.Context, sv Survey, msg conv.Message) ([]conv.Reply, bool, error) {
	if _, err := s.updateSurvey(ctx, sv.ID, func(v *Survey) error {
		v.State, v.LastMsgID, v.LastReply = StateDone, msg.ID, s.cfg.Question.OptOutAck
		return nil
	}); err != nil {
		return nil, false, err
	}
	_, _ = s.eng.CompareAndDelete(ctx, keyPending+string(msg.Customer), []byte(sv.ID))
	if err := s.optOut(ctx, msg.Customer, sv.ID); err != nil {
		return nil, false, err
	}
	return []conv.Reply{conv.Text(s.cfg.Question.OptOutAck)}, true, nil
}

// onReason takes the answer to "why?": any text is the comment.
func (s *Service) onReason(ctx context.Context, sv Survey, msg conv.Message) ([]conv.Reply, bool, error) {
	if ParseReply(msg.Text, s.cfg.OptOutWords).Kind == ReplyOptOut {
		return s.optOutDuring(ctx, sv, msg)
	}
	comment := strings.TrimSpace(msg.Text)
	next, reply := StateDone, s.cfg.Question.Thanks
	if sv.Score != nil && s.asksContactTime(sv, *sv.Score) {
		next, reply = StateWhen, s.cfg.Question.ContactTime
	}
	sv, err := s.updateSurvey(ctx, sv.ID, func(v *Survey) error {
		if v.State != StateWhy {
			return errNoChange
		}
		v.State, v.Comment, v.LastMsgID, v.LastReply = next, comment, msg.ID, reply
		return nil
	})
	if errors.Is(err, errNoChange) {
		return s.lostRace(ctx, sv.ID, msg)
	}
	if err != nil {
		return nil, false, err
	}
	if next == StateDone {
		_, _ = s.eng.CompareAndDelete(ctx, keyPending+string(msg.Customer), []byte(sv.ID))
		_ = s.eng.Ack(ctx, queueTimers, "exp:"+sv.ID)
	}
	if err := s.appendRecord(ctx, s.record("comment", sv)); err != nil {
		return nil, false, err
	}
	if sv.Score != nil && *sv.Score <= s.cfg.DetractorMax && sv.Kind == KindNPS {
		s.caseComment(ctx, sv)
	}
	return []conv.Reply{conv.Text(reply)}, true, nil
}

// onContactTime takes a detractor's preferred call-back time.
func (s *Service) onContactTime(ctx context.Context, sv Survey, msg conv.Message) ([]conv.Reply, bool, error) {
	if ParseReply(msg.Text, s.cfg.OptOutWords).Kind == ReplyOptOut {
		return s.optOutDuring(ctx, sv, msg)
	}
	when := clip(strings.TrimSpace(msg.Text), 100)
	sv, err := s.updateSurvey(ctx, sv.ID, func(v *Survey) error {
		if v.State != StateWhen {
			return errNoChange
		}
		v.State, v.PreferredTime, v.LastMsgID, v.LastReply = StateDone, when, msg.ID, s.cfg.Question.Thanks
		return nil
	})
	if errors.Is(err, errNoChange) {
		return s.lostRace(ctx, sv.ID, msg)
	}
	if err != nil {
		return nil, false, err
	}
	_, _ = s.eng.CompareAndDelete(ctx, keyPending+string(msg.Customer), []byte(sv.ID))
	_ = s.eng.Ack(ctx, queueTimers, "exp:"+sv.ID)
	s.casePreferredTime(ctx, sv)
	return []conv.Reply{conv.Text(s.cfg.Question.Thanks)}, true, nil
}

// optOut records that the customer's brand-wide identity wants no surveys.
func (s *Service) optOut(ctx context.Context, c conv.CustomerID, surveyID string) error {
	identity := s.opts.Identity(c)
	if err := s.eng.Set(ctx, keyOptOut+identity, []byte(s.now().UTC().Format(time.RFC3339)), 0); err != nil {
		return err
	}
	s.emit(conv.Event{Type: EvSurveyOptOut, Customer: c, Data: map[string]string{"survey": surveyID}})
	return nil
}

// OptedOut reports whether the customer's identity opted out of surveys.
func (s *Service) OptedOut(ctx context.Context, c conv.CustomerID) (bool, error) {
	return s.exists(ctx, keyOptOut+s.opts.Identity(c))
}

// ForgetCustomer deletes the customer's personal data held by surveys
// (WeChat requires it on unsubscribe; wire it to Router.OnUnsubscribe): the
// pending survey ends as unanswered ("unsubscribed") and forgets the
// customer's ids, the open case keeps score and comment but loses the ids,
// and the throttle, opt-out and bot-contact keys go. Report records only
// ever held a pseudonym.
func (s *Service) ForgetCustomer(ctx context.Context, c conv.CustomerID) error {
	id := s.opts.Identity(c)
	if raw, err := s.eng.Get(ctx, keyPending+string(c)); err == nil {
		if sv, err := s.loadSurvey(ctx, string(raw)); err == nil {
			if err := s.finishUnanswered(ctx, sv, conv.Message{Customer: c}, "unsubscribed", ""); err != nil {
				return err
			}
			if _, err := s.updateSurvey(ctx, sv.ID, func(v *Survey) error { scrubContact(&v.Contact); v.Identity = ""; return nil }); err != nil {
				return err
			}
		}
	}
	if raw, err := s.eng.Get(ctx, keyCaseOpen+id); err == nil {
		_, err := s.updateCase(ctx, string(raw), func(cs *Case) error {
			cs.Customer, cs.ExternalUser, cs.Identity = conv.CustomerID(pseudonym(c)), "", ""
			cs.History = append(cs.History, CaseEvent{At: s.now(), Actor: "system", Action: "customer_forgotten", Note: "客户已取消关注，个人信息已删除"})
			return nil
		})
		if err != nil && !errors.Is(err, conv.ErrNotFound) {
			return err
		}
	}
	return s.eng.Del(ctx, keyPending+string(c), keyBot+string(c), keyThrottle+id, keyOptOut+id, keyCaseOpen+id)
}

// scrubContact removes the platform ids from a contact.
func scrubContact(ce *conv.ContactEnded) {
	ce.Customer, ce.ExternalUser, ce.KFCode = conv.CustomerID(pseudonym(ce.Customer)), "", ""
}

// widthFoldable reports whether width.Fold could change s: only the
// ideographic space, the fullwidth and halfwidth forms block and a few
// narrow symbols with a wide twin have another width. Most messages have
// none, and skip the fold's copy.
func widthFoldable(s string) bool {
	for _, r := range s {
		if r == 0x3000 || r == 0x20A9 || (r >= 0x2985 && r <= 0x2986) || (r >= 0xFF00 && r <= 0xFFEF) {
			return true
		}
	}
	return false
}

// mentionsAny is a cheap filter in front of ParseReply on the path every
// message takes: a text that contains none of the opt-out words (case
// folded) cannot be an opt-out.
func mentionsAny(text string, words []string) bool {
	lower := text
	if widthFoldable(text) {
		lower = width.Fold.String(text) // "ＴＤ" is "td"
	}
	lower = strings.ToLower(lower)
	for _, w := range words {
		if w != "" && strings.Contains(lower, strings.ToLower(w)) {
			return true
		}
	}
	return false
}
