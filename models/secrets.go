package models

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"hash/crc32"
)

// SecretPrefix marks keydesk secret keys so leak scanners can find them.
const SecretPrefix = "kd_live_"

const (
	base62         = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	secretRandLen  = 30 // 30 base62 characters ≈ 178 bits of entropy
	secretCheckLen = 6  // base62 CRC-32 of prefix+random, as GitHub tokens do
	// SecretLen is the length of a whole secret key.
	SecretLen = len(SecretPrefix) + secretRandLen + secretCheckLen
)

// Revealed is a credential in plaintext, for the one response that shows it.
type Revealed struct {
	APIKey string
	Secret string
}

// newAPIKey is 32 lowercase hex characters (128 random bits), Mailjet's format.
func newAPIKey() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("models: api key: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// newSecret draws 30 base62 characters from crypto/rand (rejection
// sampling, so no modulo bias) and appends the checksum.
func newSecret() (string, error) {
	out := make([]byte, 0, SecretLen)
	out = append(out, SecretPrefix...)
	buf := make([]byte, 64)
	for len(out) < len(SecretPrefix)+secretRandLen {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("models: secret: %w", err)
		}
		for _, b := range buf {
			if b < 248 { // 248 = 4×62: keeps the draw uniform
				out = append(out, base62[b%62])
				if len(out) == len(SecretPrefix)+secretRandLen {
					break
				}
			}
		}
	}
	return string(appendChecksum(out, out)), nil
}

func appendChecksum(dst, body []byte) []byte {
	c := crc32.ChecksumIEEE(body)
	var enc [secretCheckLen]byte
	for i := secretCheckLen - 1; i >= 0; i-- {
		enc[i] = base62[c%62]
		c /= 62
	}
	return append(dst, enc[:]...)
}

// ValidSecretFormat checks prefix, alphabet and checksum without touching
// the database: typos and foreign strings are rejected at once.
func ValidSecretFormat(secret string) bool {
	if len(secret) != SecretLen || secret[:len(SecretPrefix)] != SecretPrefix {
		return false
	}
	body := secret[:len(secret)-secretCheckLen]
	for i := len(SecretPrefix); i < len(secret); i++ {
		c := secret[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	c := crcString(body)
	for i := len(secret) - 1; i >= len(secret)-secretCheckLen; i-- {
		if secret[i] != base62[c%62] {
			return false
		}
		c /= 62
	}
	return true
}

// crcString is CRC-32 (IEEE) of a string without converting it to a byte
// slice, which would allocate on every verification.
func crcString(s string) uint32 {
	crc := ^uint32(0)
	for i := 0; i < len(s); i++ {
		crc = crc32.IEEETable[byte(crc)^s[i]] ^ (crc >> 8)
	}
	return ^crc
}

// ValidAPIKeyFormat checks for 32 lowercase hex characters.
func ValidAPIKeyFormat(k string) bool {
	if len(k) != 32 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// digestSecret is the stored form of a secret: SHA-256. Secrets are high
// entropy, so a fast hash is right (a slow KDF would only slow every API
// call and SMTP login). The copy into a stack buffer keeps it allocation-free.
func digestSecret(secret string) [32]byte {
	var buf [SecretLen]byte
	if len(secret) != SecretLen {
		return sha256.Sum256([]byte(secret))
	}
	copy(buf[:], secret)
	return sha256.Sum256(buf[:])
}

func digestEqual(a [32]byte, b []byte) bool {
	return len(b) == 32 && subtle.ConstantTimeCompare(a[:], b) == 1
}

// secretHint is what the console shows instead of the secret: the prefix and
// the last four characters.
func secretHint(secret string) string {
	return SecretPrefix + "…" + secret[len(secret)-4:]
}
