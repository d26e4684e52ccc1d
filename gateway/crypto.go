package gateway

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/silenceper/wechat/v2/util"
)

// Errors of the verify/decrypt step. Signature problems answer 401 and are
// never processed; decrypt problems of a correctly signed request answer 500
// so WeChat retries (they mean a key rotation or misconfiguration to alert
// on, not an attacker).
var (
	errBadSignature = errors.New("signature mismatch")
	errStale        = errors.New("timestamp outside the allowed window")
	errDecrypt      = errors.New("decrypt failed")
	errReceiveID    = errors.New("receive id mismatch")
)

// cipherKey is a decoded EncodingAESKey with the id the platform appends to
// every plaintext (appid for OA, corpid for WeCom and KF).
type cipherKey struct {
	key       []byte // 32 bytes, AES-256
	receiveID string
}

// newCipherKey decodes a 43-character EncodingAESKey once at start-up, so
// the hot path does not base64-decode it on every request as
// util.DecryptMsg does.
func newCipherKey(encodingAESKey, receiveID string) (*cipherKey, error) {
	if len(encodingAESKey) != 43 {
		return nil, fmt.Errorf("encoding_aes_key must be 43 characters, got %d", len(encodingAESKey))
	}
	key, err := base64.StdEncoding.DecodeString(encodingAESKey + "=")
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("encoding_aes_key is not valid base64 of 32 bytes")
	}
	return &cipherKey{key: key, receiveID: receiveID}, nil
}

// decrypt opens an Encrypt field and checks the receive id, as WECHAT.md
// §1.4 requires: AES-CBC without a MAC is not authentication, the id check
// plus the msg_signature are.
func (k *cipherKey) decrypt(encrypt string) ([]byte, error) {
	ct, err := base64.StdEncoding.DecodeString(encrypt)
	if err != nil || len(ct) == 0 {
		return nil, errDecrypt
	}
	msg, id, err := aesDecrypt(ct, k.key)
	if err != nil {
		return nil, errDecrypt
	}
	if subtle.ConstantTimeCompare(id, []byte(k.receiveID)) != 1 {
		return nil, errReceiveID
	}
	return msg, nil
}

// aesDecrypt wraps util.AESDecryptMsg, which panics on some malformed
// inputs (it slices by an attacker-controlled length), into an error.
func aesDecrypt(ct, key []byte) (msg, id []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errDecrypt
		}
	}()
	_, msg, id, err = util.AESDecryptMsg(ct, key)
	return msg, id, err
}

// encrypt seals a passive reply for the platform.
func (k *cipherKey) encrypt(plain []byte) string {
	var random [16]byte
	_, _ = rand.Read(random[:])
	ct := util.AESEncryptMsg(random[:], plain, k.receiveID, k.key)
	return base64.StdEncoding.EncodeToString(ct)
}

// signatureOK compares want with sha1(sort(parts)) in constant time.
func signatureOK(want string, parts ...string) bool {
	if len(want) != 40 {
		return false
	}
	got := util.Signature(parts...)
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// signatureOf computes sha1(sort(parts)) for replies we sign.
func signatureOf(parts ...string) string { return util.Signature(parts...) }
