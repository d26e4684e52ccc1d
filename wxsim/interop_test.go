package wxsim

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/silenceper/wechat/v2/cache"
	"github.com/silenceper/wechat/v2/util"
	"github.com/silenceper/wechat/v2/work/config"
	"github.com/silenceper/wechat/v2/work/kf"
	"github.com/silenceper/wechat/v2/work/kf/sendmsg"
)

// TestSilenceperKFClientAgainstSimulator drives the simulator with the SDK
// the gateway uses, so response shapes and callback crypto are proven
// compatible end to end.
func TestSilenceperKFClientAgainstSimulator(t *testing.T) {
	h := newHarness(t, func(o *APIOptions) { o.KFEmptyPageEvery = -1 })
	util.SetURIModifier(func(uri string) string {
		return strings.Replace(uri, "https://qyapi.weixin.qq.com", h.base, 1)
	})
	t.Cleanup(func() { util.SetURIModifier(nil) })
	cli, err := kf.NewClient(&config.Config{CorpID: tCorpID, CorpSecret: tKFSecret, AgentID: "kf", Cache: cache.NewMemory(), Token: tToken, EncodingAESKey: tAESKey})
	if err != nil {
		t.Fatal(err)
	}

	// Callback: the SDK verifies our echostr and decrypts our signal.
	var got kf.CallbackMessage
	gw := httptest.NewServer(httpHandlerFunc(func(q map[string]string, body []byte) (int, string) {
		if q["echostr"] != "" {
			echo, err := cli.VerifyURL(kf.SignatureOptions{Signature: q["msg_signature"], TimeStamp: q["timestamp"], Nonce: q["nonce"], EchoStr: q["echostr"]})
			if err != nil {
				return 403, ""
			}
			return 200, echo
		}
		m, err := cli.GetCallbackMessage(body)
		if err != nil {
			return 400, ""
		}
		got = m
		return 200, ""
	}))
	defer gw.Close()
	kc := &KFClient{URL: gw.URL, Token: tToken, CorpID: tCorpID, EncodingAESKey: tAESKey, API: h.api}
	if err := kc.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.CustomerSends(context.Background(), tKF, "wmI", "你好"); err != nil {
		t.Fatal(err)
	}
	if got.Event != "kf_msg_or_event" || got.OpenKfID != tKF || got.Token == "" {
		t.Fatalf("SDK decoded %+v", got)
	}

	res, err := cli.SyncMsg(kf.SyncMsgOptions{Token: got.Token, OpenKfID: tKF, Limit: 1000})
	if err != nil || len(res.MsgList) != 1 || res.HasMore != 0 {
		t.Fatalf("sync: %v %+v", err, res)
	}
	txt, err := res.MsgList[0].GetTextMessage()
	if err != nil || txt.Text.Content != "你好" || txt.ExternalUserID != "wmI" || txt.Origin != 3 {
		t.Fatalf("text: %v %+v", err, txt)
	}

	if _, err := cli.ServiceStateTrans(kf.ServiceStateTransOptions{OpenKFID: tKF, ExternalUserID: "wmI", ServiceState: 1}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ {
		msg := sendmsg.Text{Message: sendmsg.Message{ToUser: "wmI", OpenKFID: tKF}, MsgType: "text"}
		msg.Text.Content = "答复"
		_, err := cli.SendMsg(msg)
		if (i < 5) != (err == nil) {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	res, err = cli.SyncMsg(kf.SyncMsgOptions{Cursor: res.NextCursor, OpenKfID: tKF})
	if err != nil || len(res.MsgList) != 1 || res.MsgList[0].EventType != "msg_send_fail" {
		t.Fatalf("sync 2: %v %+v", err, res)
	}
	ev, err := res.MsgList[0].GetMsgSendFailEvent()
	if err != nil || ev.Event.FailType != 6 || ev.Event.ExternalUserID != "wmI" || ev.Event.FailMsgID == "" {
		t.Fatalf("fail event %v %+v", err, ev)
	}
	end, err := cli.ServiceStateTrans(kf.ServiceStateTransOptions{OpenKFID: tKF, ExternalUserID: "wmI", ServiceState: 4})
	if err != nil || end.MsgCode == "" {
		t.Fatalf("end: %v %+v", err, end)
	}
	if _, err := cli.ServiceStateTrans(kf.ServiceStateTransOptions{OpenKFID: tKF, ExternalUserID: "wmI", ServiceState: 1}); err == nil {
		t.Fatal("SDK saw no error for 4 → 1")
	}
}
