package app

import (
	"context"
	"log/slog"
	"time"

	"kefu/conv"
	"kefu/engine"
	"kefu/gateway"
)

// kfBotCheck is how long a KF session is trusted to still be in the bot's
// hands after it was last checked or moved there; within it, bot turns
// cost no API call.
const kfBotCheck = 10 * time.Minute

// kfBotState keeps the KF sessions the bot serves in service_state 1.
type kfBotState struct {
	eng engine.Engine
	gw  *gateway.Gateway
	log *slog.Logger
}

func newKFBotState(eng engine.Engine, gw *gateway.Gateway, log *slog.Logger) *kfBotState {
	return &kfBotState{eng: eng, gw: gw, log: log.With("component", "kf-bot-state")}
}

// ensure moves msg's KF session from 0 (new, 未处理) to 1 (served by the
// bot). Sessions in 2/3 belong to the queue or an agent and are left alone;
// 4 (ended) cannot be changed through the API. A marker per session
// (kfBotCheck) keeps this to one service_state/get per session in the
// common case. Failures are logged: the bot may answer in state 0 too.
func (k *kfBotState) ensure(ctx context.Context, msg conv.Message) {
	key := kfBotKey(msg)
	if fresh, err := k.eng.SetNX(ctx, key, []byte("1"), kfBotCheck); err != nil || !fresh {
		if err != nil {
			k.log.Warn("kf bot state marker", "err", err)
		}
		return
	}
	state, _, err := k.gw.KFServiceState(ctx, msg.Channel, msg.Account, msg.ExternalUser)
	if err != nil {
		k.log.Warn("kf service_state/get failed", "customer", string(msg.Customer), "err", err)
		_ = k.eng.Del(ctx, key) // try again on the next turn
		return
	}
	if state != gateway.KFStateNew {
		return
	}
	if _, err := k.gw.KFTransfer(ctx, msg.Channel, msg.Account, msg.ExternalUser, gateway.KFStateBot, ""); err != nil {
		k.log.Warn("kf service_state/trans to 1 failed", "customer", string(msg.Customer), "err", err)
		_ = k.eng.Del(ctx, key)
	}
}

// forget drops the session's marker when the bot hands the customer over:
// the session leaves the bot's hands, and when the customer comes back
// after the human contact ends it starts again in state 0.
func (k *kfBotState) forget(ctx context.Context, msg conv.Message) {
	if err := k.eng.Del(ctx, kfBotKey(msg)); err != nil {
		k.log.Warn("kf bot state marker", "err", err)
	}
}

func kfBotKey(msg conv.Message) string {
	return "kf:bot:" + msg.Channel + ":" + msg.Account + ":" + msg.ExternalUser
}
