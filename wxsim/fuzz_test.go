package wxsim

import (
	"bytes"
	"fmt"
	"testing"
)

// FuzzDecodeReply feeds arbitrary callback answers to the reply decoder in
// every mode. It must never panic, and anything it accepts must be a
// well-formed reply addressed to the right user — or, for an encrypted
// reply, one that really was signed and encrypted for this AppID.
func FuzzDecodeReply(f *testing.F) {
	cr, _ := NewCrypter(tToken, tAESKey, tAppID)
	plain := textReply(map[string]string{"FromUserName": "oU", "ToUserName": tGhID}, "hi")
	enc := cr.EncryptWith([]byte("0123456789abcdef"), tAppID, []byte(plain))
	env := fmt.Sprintf("<xml><Encrypt><![CDATA[%s]]></Encrypt><MsgSignature><![CDATA[%s]]></MsgSignature><TimeStamp>1</TimeStamp><Nonce><![CDATA[n]]></Nonce></xml>", enc, cr.Sign("1", "n", enc))
	for _, s := range []string{"", "success", plain, env, "<xml><Encrypt>AAAA</Encrypt></xml>", "<xml><MsgType>news</MsgType><ArticleCount>2</ArticleCount></xml>", `{"a":1}`, "<xml><Encrypt><![CDATA[" + enc[:32] + "]]></Encrypt><MsgSignature>x</MsgSignature><TimeStamp>1</TimeStamp><Nonce>n</Nonce></xml>"} {
		for m := range 3 {
			f.Add([]byte(s), uint8(m))
		}
	}
	f.Fuzz(func(t *testing.T, body []byte, mode uint8) {
		c := &OAClient{Token: tToken, AppID: tAppID, EncodingAESKey: tAESKey, OriginalID: tGhID, Mode: Mode(mode % 3)}
		rep, err := c.DecodeReply("oU", body)
		if err != nil {
			if rep != nil {
				t.Fatal("reply returned with error")
			}
			return
		}
		if rep == nil {
			if len(body) != 0 && !bytes.Equal(body, []byte("success")) {
				t.Fatalf("accepted %q as an ack", body)
			}
			return
		}
		if rep.ToUser != "oU" || rep.FromUser != tGhID || rep.CreateTime <= 0 {
			t.Fatalf("accepted misaddressed reply %+v", rep)
		}
		if c.Mode == ModeSafe && !rep.Encrypted || c.Mode == ModePlain && rep.Encrypted {
			t.Fatalf("mode %v accepted encrypted=%v", c.Mode, rep.Encrypted)
		}
		if rep.MsgType == "text" && rep.Content == "" {
			t.Fatal("accepted empty text")
		}
	})
}
