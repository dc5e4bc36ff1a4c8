package api

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"
)

// Tokens is the set of bearer tokens that may call /api/v1. It is empty
// (everything allowed) unless a tokens file was given. The file is read
// again on reload, so tokens can be rotated without a restart.
type Tokens struct {
	path string

	mu     sync.RWMutex
	tokens [][]byte
}

// LoadTokens reads path: one token per line; blank lines and lines starting
// with # are ignored. An empty path means no authentication. A file that
// exists but holds no token is an error, not "allow everyone".
func LoadTokens(path string) (*Tokens, error) {
	t := &Tokens{path: path}
	if err := t.Reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// Enabled reports whether requests need a token.
func (t *Tokens) Enabled() bool { return t != nil && t.path != "" }

// Reload reads the tokens file again; on error the previous tokens stay.
func (t *Tokens) Reload() error {
	if t.path == "" {
		return nil
	}
	data, err := os.ReadFile(t.path)
	if err != nil {
		return fmt.Errorf("reading bearer tokens file: %w", err)
	}
	var tokens [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		tok := strings.TrimSpace(sc.Text())
		if tok == "" || strings.HasPrefix(tok, "#") {
			continue
		}
		if strings.ContainsAny(tok, " \t") {
			// Never echo the token itself: the message names the line only.
			return fmt.Errorf("bearer tokens file %s line %d: a token must not contain whitespace", t.path, line)
		}
		tokens = append(tokens, []byte(tok))
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading bearer tokens file: %w", err)
	}
	if len(tokens) == 0 {
		return fmt.Errorf("bearer tokens file %s holds no token", t.path)
	}
	t.mu.Lock()
	t.tokens = tokens
	t.mu.Unlock()
	return nil
}

// valid compares the presented token with every configured one in
// constant time, without stopping at the first match, so timing reveals
// neither the token nor which one matched.
func (t *Tokens) valid(presented []byte) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	match := 0
	for _, tok := range t.tokens {
		match |= subtle.ConstantTimeCompare(presented, tok)
	}
	return match == 1
}

// middleware refuses requests under prefix without a valid
// "Authorization: Bearer" header with 401 and a WWW-Authenticate challenge.
func (t *Tokens) middleware(prefix string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			// The route template and the URL both count, so no
			// encoding of the path can reach an API route unchecked.
			guarded := strings.HasPrefix(c.Path(), prefix) || strings.HasPrefix(c.Request().URL.Path+"/", prefix)
			if !t.Enabled() || !guarded {
				return next(c)
			}
			header := c.Request().Header.Get(echo.HeaderAuthorization)
			scheme, token, ok := strings.Cut(header, " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="berth-placement"`)
				return &Error{Status: http.StatusUnauthorized, Code: CodeUnauthenticated, Message: "missing bearer token: send Authorization: Bearer <token>"}
			}
			if !t.valid([]byte(strings.TrimSpace(token))) {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="berth-placement", error="invalid_token"`)
				return &Error{Status: http.StatusUnauthorized, Code: CodeUnauthenticated, Message: "invalid bearer token"}
			}
			return next(c)
		}
	}
}
