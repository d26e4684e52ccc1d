package gateway

import (
	"context"
	"fmt"

	"kefu/conv"
)

// KF session states (WECHAT.md §4.3).
const (
	KFStateNew   = 0 // 未处理
	KFStateBot   = 1 // 由智能助手接待
	KFStateQueue = 2 // 待接入池排队中
	KFStateHuman = 3 // 由人工接待
	KFStateEnded = 4 // 已结束
)

// KFServiceState returns a KF session's state and its servicer.
func (g *Gateway) KFServiceState(ctx context.Context, channel, openKfID, externalUser string) (state int, servicer string, err error) {
	ch, ok := g.byName[channel]
	if !ok || ch.cfg.Type != conv.ChannelWeComKF {
		return 0, "", fmt.Errorf("%w: %q is not a wecom_kf channel", conv.ErrBadInput, channel)
	}
	var out struct {
		ServiceState   int    `json:"service_state"`
		ServicerUserID string `json:"servicer_userid"`
	}
	err = g.Sender.api.call(ctx, kfApp(ch), g.cfg.WeComAPIBase, "/cgi-bin/kf/service_state/get",
		map[string]any{"open_kfid": openKfID, "external_userid": externalUser}, &out)
	return out.ServiceState, out.ServicerUserID, err
}

// KFTransfer moves a KF session to state (1 bot, 2 queue, 3 human with
// servicer, 4 end) and returns the msg_code the platform hands out on the
// first change to 2/3 and on 4 (queue notice 48 h; end-of-session 20 s,
// the survey slot), for send_msg_on_event.
func (g *Gateway) KFTransfer(ctx context.Context, channel, openKfID, externalUser string, state int, servicer string) (msgCode string, err error) {
	ch, ok := g.byName[channel]
	if !ok || ch.cfg.Type != conv.ChannelWeComKF {
		return "", fmt.Errorf("%w: %q is not a wecom_kf channel", conv.ErrBadInput, channel)
	}
	if state < KFStateBot || state > KFStateEnded {
		return "", fmt.Errorf("%w: KF state %d cannot be set through the API", conv.ErrBadInput, state)
	}
	if state == KFStateHuman && servicer == "" {
		return "", fmt.Errorf("%w: state 3 needs a servicer userid", conv.ErrBadInput)
	}
	body := map[string]any{"open_kfid": openKfID, "external_userid": externalUser, "service_state": state}
	if servicer != "" {
		body["servicer_userid"] = servicer
	}
	var out struct {
		MsgCode string `json:"msg_code"`
	}
	err = g.Sender.api.call(ctx, kfApp(ch), g.cfg.WeComAPIBase, "/cgi-bin/kf/service_state/trans", body, &out)
	return out.MsgCode, err
}
