package handoff

import (
	"context"
	"errors"
	"fmt"
	"time"

	"kefu/conv"
	"kefu/engine"
)

// perMessageQuota is the OA/KF allowance: at most 5 customer-service
// messages per customer message, within 48 h (WECHAT.md §2.1, §4.4).
const perMessageQuota = 5

// sendBook counts the desk's own customer-facing sends per customer
// message. The sender's book only counts what it has delivered; sends
// still in its outbox are invisible there, so without this a fast agent
// could be shown (and use) a slot that is already taken.
type sendBook struct {
	Trigger int64 `json:"t"` // unix ms of the customer message
	N       int   `json:"n"`
}

func bookKey(c conv.CustomerID) string { return "ho:b:{" + string(c) + "}" }

// remaining combines the sender's view (window, delivered sends) with the
// desk's reservations; -1 means the channel has no per-customer limit.
func (s *Service) remaining(ctx context.Context, c *conv.Conversation) (int, time.Time, error) {
	rem, until, err := s.send.Quota(ctx, c.Channel, c.ExternalUser, c.LastCustomerMsgAt)
	if err != nil || rem < 0 {
		return rem, until, err
	}
	var b sendBook
	if raw, err := s.eng.Get(ctx, bookKey(c.Customer)); err == nil {
		_ = jsonUnmarshal(raw, &b)
	} else if !errors.Is(err, engine.ErrNotFound) {
		return 0, until, err
	}
	if b.Trigger == c.LastCustomerMsgAt.UnixMilli() {
		rem = min(rem, perMessageQuota-b.N)
	}
	return max(rem, 0), until, nil
}

// reserve takes one slot of the customer's current allowance for a desk
// send, atomically, or fails with conv.ErrQuotaExhausted.
func (s *Service) reserve(ctx context.Context, c *conv.Conversation) error {
	rem, _, err := s.send.Quota(ctx, c.Channel, c.ExternalUser, c.LastCustomerMsgAt)
	if err != nil {
		return err
	}
	if rem < 0 {
		return nil // no per-customer limit (JSON, WeCom app)
	}
	if rem == 0 {
		return fmt.Errorf("%w: the window is closed or the allowance is used up", conv.ErrQuotaExhausted)
	}
	key := bookKey(c.Customer)
	trigger := c.LastCustomerMsgAt.UnixMilli()
	return s.eng.Update(ctx, []string{key}, func(tx engine.Tx) error {
		b, _, err := getJSON[sendBook](tx, key)
		if err != nil {
			return err
		}
		if trigger > b.Trigger {
			b = sendBook{Trigger: trigger}
		}
		if b.N >= perMessageQuota {
			return fmt.Errorf("%w: %d of %d messages for this customer message are used", conv.ErrQuotaExhausted, b.N, perMessageQuota)
		}
		b.N++
		setJSON(tx, key, b, 49*time.Hour)
		return nil
	})
}

// release gives a reserved slot back when the send could not be enqueued.
func (s *Service) release(ctx context.Context, c *conv.Conversation) {
	key := bookKey(c.Customer)
	trigger := c.LastCustomerMsgAt.UnixMilli()
	_ = s.eng.Update(ctx, []string{key}, func(tx engine.Tx) error {
		b, ok, err := getJSON[sendBook](tx, key)
		if err != nil || !ok || b.Trigger != trigger || b.N == 0 {
			return err
		}
		b.N--
		setJSON(tx, key, b, 49*time.Hour)
		return nil
	})
}
