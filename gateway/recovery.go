package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"kefu/conv"
	"kefu/engine"
)

// recoveryLease is how long a recovery worker owns a claimed inbox job.
const recoveryLease = time.Minute

// maxRecoveryAttempts bounds how often recovery retries one message.
const maxRecoveryAttempts = 5

// RunRecovery takes over accepted messages whose worker died (process
// crash, kill -9, lost instance) and answers them through the send API.
// Every instance runs it; Claim's lease makes each job go to one worker.
func (g *Gateway) RunRecovery(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		for shard := 0; shard < g.cfg.Shards; shard++ {
			g.recoverShard(ctx, shard)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// RecoverOnce runs one recovery pass over every shard; tests and the
// restart path call it directly.
func (g *Gateway) RecoverOnce(ctx context.Context) {
	for shard := 0; shard < g.cfg.Shards; shard++ {
		g.recoverShard(ctx, shard)
	}
}

func (g *Gateway) recoverShard(ctx context.Context, shard int) {
	queue := inboxQueueOf(shard)
	jobs, err := g.eng.Claim(ctx, queue, g.now(), recoveryLease, 50)
	if err != nil {
		g.log.Warn("recovery claim failed", "queue", queue, "err", err)
		return
	}
	for _, job := range jobs {
		var msg conv.Message
		if err := json.Unmarshal(job.Data, &msg); err != nil {
			g.log.Error("unreadable inbox job; dropping", "queue", queue, "job", job.ID, "err", err)
			_ = g.eng.Ack(ctx, queue, job.ID)
			continue
		}
		claimKey := dedupeKeyIn(shard, msg.ID)
		if job.Attempts > maxRecoveryAttempts {
			// A message that keeps failing (a handler bug, a poison input)
			// is given up loudly rather than retried forever.
			g.log.Error("giving up on a message that failed every recovery attempt", "msg_id", msg.ID, "attempts", job.Attempts)
			done := dedupeState{S: "d", At: g.now().UnixMilli()}
			_ = g.eng.Set(ctx, claimKey, done.bytes(), g.ttlFor(msg))
			_ = g.eng.Ack(ctx, queue, job.ID)
			continue
		}
		// Take ownership with a compare-and-swap so a slow original worker
		// cannot answer too; an expired dedupe key is claimed afresh, so
		// nothing accepted is ever lost.
		var old []byte // nil: the key must be absent
		cur, err := g.eng.Get(ctx, claimKey)
		switch {
		case errors.Is(err, engine.ErrNotFound):
		case err != nil:
			continue // engine trouble: the lease brings the job back
		default:
			if st, perr := parseState(cur); perr == nil && st.S == "d" {
				_ = g.eng.Ack(ctx, queue, job.ID) // answered; only the ack was lost
				continue
			}
			old = cur
		}
		owner := g.newOwner()
		next := dedupeState{S: "p", O: owner, A: true, At: g.now().UnixMilli()}.bytes()
		if ok, err := g.eng.CompareAndSwap(ctx, claimKey, old, next, g.ttlFor(msg)); err != nil || !ok {
			continue // someone else moved it; the lease brings it back if needed
		}
		g.metrics.recovered.Inc()
		g.log.Info("recovering accepted message", "msg_id", msg.ID, "attempt", job.Attempts)
		g.process(msg, claimed{key: claimKey, queue: queue, owner: owner, state: next})
	}
}
