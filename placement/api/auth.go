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

// Tokens is the set of bearer tokens that may call /api/v1, /-/reload and
// the mounted handlers (the embedded Prometheus API). It is empty
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

// middleware refuses requests under any of prefixes (a path equal to one,
// or below it) without a valid "Authorization: Bearer" header with 401 and
// a WWW-Authenticate challenge.
//
// Every Authorization header is looked at, not only the first: with basic
// auth in the web config, the exporter-toolkit checks the first header
// (Basic) and a client sends the bearer token in a second one.
func (t *Tokens) middleware(prefixes ...string) echo.MiddlewareFunc {
	under := func(path string) bool {
		for _, p := range prefixes {
			if path == p || strings.HasPrefix(path, p+"/") {
				return true
			}
		}
		return false
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			// The route template and the URL both count, so no
			// encoding of the path can reach a guarded route unchecked.
			if !t.Enabled() || !(under(c.Path()) || under(c.Request().URL.Path)) {
				return next(c)
			}
			var presented []string
			for _, header := range c.Request().Header.Values(echo.HeaderAuthorization) {
				scheme, token, ok := strings.Cut(header, " ")
				if ok && strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(token) != "" {
					presented = append(presented, strings.TrimSpace(token))
				}
			}
			if len(presented) == 0 {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="berth-placement"`)
				return &Error{Status: http.StatusUnauthorized, Code: CodeUnauthenticated, Message: "missing bearer token: send Authorization: Bearer <token>"}
			}
			for _, token := range presented {
				if t.valid([]byte(token)) {
					return next(c)
				}
			}
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="berth-placement", error="invalid_token"`)
			return &Error{Status: http.StatusUnauthorized, Code: CodeUnauthenticated, Message: "invalid bearer token"}
		}
	}
}
