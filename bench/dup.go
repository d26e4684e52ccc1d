package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"kefu/conv"
	"kefu/engine"
	"kefu/wxsim"
)

// DupReport is the outcome of the duplicate check: every push was sent four
// times; each MsgId must have been handled once and answered once.
type DupReport struct {
	Messages int `json:"messages"`
	// Handled counts MsgIds whose handler ran exactly once (from kefu's
	// event log: one message_received per MsgId).
	Handled int `json:"handled_once"`
	// HandledTwice counts MsgIds handled more than once: a dedupe failure.
	HandledTwice int `json:"handled_more_than_once"`
	// NoEvent counts MsgIds without a message_received event. kefu drops
	// events rather than block an answer when its event buffer is full, so
	// this alone is not a failure; it makes the check weaker for those.
	NoEvent int `json:"no_event"`
	// Passive counts MsgIds answered passively, all four copies with the
	// same reply; API counts those answered once through custom/send.
	Passive int `json:"answered_passively"`
	API     int `json:"answered_via_api"`
	// The violations: MsgIds with a copy not answered 200, with replies
	// that differ or that WeChat would reject, never answered, or answered
	// more than once. Examples describes the first few.
	NotAcked      int      `json:"copies_not_acked"`
	Inconsistent  int      `json:"inconsistent_replies"`
	Unanswered    int      `json:"unanswered"`
	AnsweredTwice int      `json:"answered_twice"`
	Examples      []string `json:"examples,omitempty"`
}

// OK reports whether every MsgId was handled at most once and answered
// exactly once, with every copy acknowledged.
func (d *DupReport) OK() bool {
	return d.HandledTwice == 0 && d.NotAcked == 0 && d.Inconsistent == 0 && d.Unanswered == 0 && d.AnsweredTwice == 0
}

// String renders the report as the table kefu bench -dup prints.
func (d *DupReport) String() string {
	verdict := "PASS"
	if !d.OK() {
		verdict = "FAIL"
	}
	s := fmt.Sprintf("%s: %d MsgIds ×4 copies; handler ran once for %d, more than once for %d, no event for %d; "+
		"answered passively (4 identical replies) %d, via API once %d; copies not acked %d, inconsistent replies %d, unanswered %d, answered twice %d",
		verdict, d.Messages, d.Handled, d.HandledTwice, d.NoEvent, d.Passive, d.API, d.NotAcked, d.Inconsistent, d.Unanswered, d.AnsweredTwice)
	if len(d.Examples) > 0 {
		s += "\n  e.g. " + strings.Join(d.Examples, "\n  e.g. ")
	}
	return s
}

func (d *DupReport) example(format string, a ...any) {
	if len(d.Examples) < 5 {
		d.Examples = append(d.Examples, fmt.Sprintf(format, a...))
	}
}

// eventSource says where a stopped kefu child kept its event log.
type eventSource struct {
	dataDir   string // embedded: data_dir (the engine is under data_dir/engine)
	redisAddr string // redis: the server and key prefix
	prefix    string
}

// handlerRuns counts message_received events per kefu message ID.
func handlerRuns(src eventSource) (map[string]int, error) {
	var eng engine.Engine
	if src.redisAddr != "" {
		client := redis.NewClient(&redis.Options{Addr: src.redisAddr})
		defer client.Close()
		eng = engine.NewRedis(client, src.prefix)
	} else {
		e, err := engine.OpenEmbedded(filepath.Join(src.dataDir, "engine"), engine.EmbeddedOptions{})
		if err != nil {
			return nil, err
		}
		eng = e
	}
	defer eng.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	runs := map[string]int{}
	after := ""
	for {
		recs, err := eng.ReadLog(ctx, "events", after, 5000)
		if err != nil {
			return nil, err
		}
		if len(recs) == 0 {
			return runs, nil
		}
		for _, r := range recs {
			var ev conv.Event
			if json.Unmarshal(r.Data, &ev) == nil && ev.Type == conv.EvMessageReceived {
				runs[ev.Data["msg_id"]]++
			}
		}
		after = recs[len(recs)-1].ID
	}
}

// verifyDup checks the four responses of every sent push, kefu's handler
// runs and the simulator's inboxes (one customer per push, so an inbox
// maps to one MsgId).
func verifyDup(sent []callback, kept [][][]byte, sim *wxsim.API, src eventSource) (*DupReport, error) {
	runs, err := handlerRuns(src)
	if err != nil {
		return nil, fmt.Errorf("reading kefu's event log: %w", err)
	}
	c := oaClient("http://bench.invalid" + oaPath)
	d := &DupReport{}
	for i, cb := range sent {
		bodies := kept[i]
		if bodies == nil {
			continue // taken from the pool but never sent (run ended)
		}
		d.Messages++
		id := "oa:" + oaAppID + ":m:" + cb.openID + ":" + strconv.FormatInt(cb.msgID, 10)
		switch n := runs[id]; {
		case n == 1:
			d.Handled++
		case n > 1:
			d.HandledTwice++
			d.example("MsgId %d handled %d times", cb.msgID, n)
		default:
			d.NoEvent++
		}
		var replies []string
		acked := true
		for _, b := range bodies {
			if b == nil {
				acked = false
				continue
			}
			r, err := c.DecodeReply(cb.openID, b)
			switch {
			case err != nil:
				d.Inconsistent++
				d.example("MsgId %d: reply WeChat would reject: %v", cb.msgID, err)
			case r != nil:
				replies = append(replies, r.Content)
			}
		}
		if !acked {
			d.NotAcked++
			d.example("MsgId %d: a copy was not answered 200", cb.msgID)
		}
		inbox := len(sim.Inbox(cb.openID))
		switch {
		case len(replies) > 0 && inbox > 0:
			d.AnsweredTwice++
			d.example("MsgId %d answered passively and %d× via API", cb.msgID, inbox)
		case len(replies) > 0:
			same := true
			for _, r := range replies[1:] {
				same = same && r == replies[0]
			}
			// Copies acked with "success" next to a passive reply would
			// mean the customer got the answer once but WeChat saw two
			// different outcomes; kefu returns the stored reply instead.
			if !same || len(replies) != len(bodies) {
				d.Inconsistent++
				d.example("MsgId %d: %d passive replies for %d copies, identical=%v", cb.msgID, len(replies), len(bodies), same)
			} else {
				d.Passive++
			}
		case inbox == 1:
			d.API++
		case inbox > 1:
			d.AnsweredTwice++
			d.example("MsgId %d answered %d× via API", cb.msgID, inbox)
		default:
			d.Unanswered++
			d.example("MsgId %d never answered", cb.msgID)
		}
	}
	return d, nil
}
