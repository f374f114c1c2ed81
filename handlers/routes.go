// Package handlers holds keydesk's HTTP handlers, one file per area, and
// routes.go: the one route table, readable top to bottom. A handler parses
// and validates input, calls one models operation, and renders a view.
package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"keydesk/models"
	"keydesk/web"
)

// Register adds every route to the server built by web.New.
func Register(s *web.Server) {
	e := s.Echo
	health := &healthHandlers{store: s.Store}
	auth := &authHandlers{web: s, store: s.Store}
	account := &accountHandlers{store: s.Store}
	keys := &keyHandlers{web: s, store: s.Store}
	subaccounts := &subaccountHandlers{web: s, store: s.Store}
	support := &supportHandlers{store: s.Store}
	staff := s.RequireStaffRole
	audit := &auditHandlers{store: s.Store, log: s.Log}
	rest := &restHandlers{store: s.Store}
	send := &sendHandlers{store: s.Store, relay: s.Config.Relay, baseURL: s.Config.BaseURL}
	people := &peopleHandlers{web: s, store: s.Store, mail: newMailer(s)}
	// Who may use each route: role sets from models (members.go), where
	// the rules live; every operation checks them again.
	keyViewers := web.RequireRole(models.KeyViewers...)
	keyManagers := web.RequireRole(models.KeyManagers...)
	creators := web.RequireRole(models.SubaccountCreators...)
	requesters := web.RequireRole(models.LimitRequesters...)
	teamManagers := web.RequireRole(models.TeamManagers...)
	anyRole := web.RequireRole(models.AuditReaders...)
	reviewers := web.RequireRole(models.AuditReviewers...)
	signedIn := web.RequireAuth
	// Only a session: reachable before 2FA enrolment and when suspended.
	session := web.RequireSession
	cleanQuery := web.DropEmptyQuery // filter and search pages: no empty parameters in the URL

	// Probes for load balancers and orchestrators.
	e.GET("/healthz", health.live).Name = "healthz"
	e.GET("/readyz", health.ready).Name = "readyz"

	// Signing in and out.
	e.GET("/", auth.home).Name = "home"
	e.GET("/login", auth.loginForm).Name = "login"
	e.POST("/login", auth.login).Name = "login.submit"
	e.GET("/signup", auth.signupForm).Name = "signup"
	e.POST("/signup", auth.signup).Name = "signup.submit"
	e.POST("/logout", auth.logout, session).Name = "logout"
	e.GET("/login/code", people.loginCodeForm).Name = "login.code"
	e.POST("/login/code", people.loginCode).Name = "login.code.submit"
	e.GET("/password/forgot", people.forgotForm).Name = "password.forgot"
	e.POST("/password/forgot", people.forgot).Name = "password.forgot.submit"
	e.GET("/password/reset", people.resetForm).Name = "password.reset"
	e.POST("/password/reset", people.reset).Name = "password.reset.submit"
	// Invitation links (the token is in the query or the form, never in a
	// logged path).
	e.GET("/invite", people.invitation).Name = "invite"
	e.POST("/invite", people.acceptInvitation).Name = "invite.accept"

	// The signed-in user's own account.
	e.GET("/account/password", account.passwordForm, signedIn).Name = "password"
	e.POST("/account/password", account.changePassword, signedIn).Name = "password.submit"
	e.POST("/account/language", account.setLanguage, signedIn).Name = "language.submit"
	e.GET("/account/2fa", people.twoFactorPage, session).Name = "2fa"
	e.POST("/account/2fa/setup", people.twoFactorSetup, session).Name = "2fa.setup"
	e.POST("/account/2fa", people.twoFactorConfirm, session).Name = "2fa.confirm"
	e.POST("/account/2fa/recovery-codes", people.recoveryCodes, signedIn).Name = "2fa.recovery"
	e.POST("/account/2fa/off", people.twoFactorOff, signedIn).Name = "2fa.off"
	e.POST("/account/switch", people.switchAccount, session).Name = "account.switch"

	// The team of an account (owner and admins).
	e.GET("/team", people.team, teamManagers).Name = "team"
	e.POST("/team/invitations", people.invite, teamManagers).Name = "team.invite"
	e.POST("/team/invitations/:id/revoke", people.revokeInvitation, teamManagers).Name = "team.invitation.revoke"
	e.GET("/team/members/:id", people.memberForm(false), teamManagers).Name = "team.member"
	e.POST("/team/members/:id", people.changeMember, teamManagers).Name = "team.member.submit"
	e.GET("/team/members/:id/remove", people.memberForm(true), teamManagers).Name = "team.member.remove"
	e.POST("/team/members/:id/remove", people.removeMember, teamManagers).Name = "team.member.remove.submit"
	e.POST("/team/require-2fa", people.require2FA, teamManagers).Name = "team.require2fa"

	// API Key Management (the people of an account, by role and scope).
	e.GET("/keys", keys.list, keyViewers, cleanQuery).Name = "keys"
	e.GET("/keys/:id/reset", keys.resetForm, keyManagers).Name = "keys.reset"
	e.POST("/keys/:id/reset", keys.reset, keyManagers).Name = "keys.reset.submit"
	e.GET("/keys/:id/old-secrets/:secret/end", keys.endSecretForm, keyManagers).Name = "keys.oldsecret.end"
	e.POST("/keys/:id/old-secrets/:secret/end", keys.endSecret, keyManagers).Name = "keys.oldsecret.end.submit"
	e.GET("/keys/:id/rename", keys.renameForm, keyManagers).Name = "keys.rename"
	e.POST("/keys/:id/rename", keys.rename, keyManagers).Name = "keys.rename.submit"
	e.GET("/keys/:id/deactivate", keys.deactivateForm, keyManagers).Name = "keys.deactivate"
	e.POST("/keys/:id/deactivate", keys.deactivate, keyManagers).Name = "keys.deactivate.submit"
	e.POST("/keys/:id/activate", keys.activate, keyManagers).Name = "keys.activate.submit"
	e.GET("/keys/:id/usage", keys.usage, keyViewers).Name = "keys.usage"

	// Sub-accounts and requests for more.
	e.GET("/subaccounts", subaccounts.list, keyViewers, cleanQuery).Name = "subaccounts"
	e.GET("/subaccounts/new", subaccounts.newForm, creators).Name = "subaccounts.new"
	e.POST("/subaccounts", subaccounts.create, creators).Name = "subaccounts.create"
	e.POST("/subaccounts/requests", subaccounts.requestMore, requesters).Name = "subaccounts.request"

	// Support console (role support; anyone else gets an audited 403).
	e.GET("/support", support.home, staff(models.RoleSupport), cleanQuery).Name = "support"
	e.GET("/support/accounts/:id", support.account, staff(models.RoleSupport)).Name = "support.account"
	e.POST("/support/accounts/:id/limit", support.setLimit, staff(models.RoleSupport)).Name = "support.limit"
	e.POST("/support/requests/:id/approve", support.decide(true), staff(models.RoleSupport)).Name = "support.approve"
	e.POST("/support/requests/:id/deny", support.decide(false), staff(models.RoleSupport)).Name = "support.deny"
	e.POST("/support/accounts/:id/suspend", support.suspend(true), staff(models.RoleSupport)).Name = "support.suspend"
	e.POST("/support/accounts/:id/reinstate", support.suspend(false), staff(models.RoleSupport)).Name = "support.reinstate"

	// Audit log: owners see their account tree, support and auditors all.
	e.GET("/audit", audit.page, anyRole, cleanQuery).Name = "audit"
	e.POST("/audit/export", audit.export, anyRole).Name = "audit.export"
	e.GET("/audit/heads/:seq", audit.head, anyRole).Name = "audit.head"
	e.POST("/audit/reviews", audit.review, reviewers).Name = "audit.review"

	// Mailjet-compatible REST API: HTTP Basic with API key and secret key;
	// no session cookie and no CSRF (web gives /v3 and /v3.1 a lean chain).
	// Authentication wraps each handler here, once, rather than as route
	// middleware Echo would wrap again for every request. Unknown paths
	// under /v3/REST authenticate first, as the routes do.
	apiKey := s.APIKeyAuth
	e.GET("/v3/REST/apikey", apiKey(rest.list)).Name = "api.apikey.list"
	e.POST("/v3/REST/apikey", apiKey(rest.create)).Name = "api.apikey.create"
	e.GET("/v3/REST/apikey/:id", apiKey(rest.get)).Name = "api.apikey.get"
	e.PUT("/v3/REST/apikey/:id", apiKey(rest.update)).Name = "api.apikey.update"
	e.RouteNotFound("/v3/REST", apiKey(echo.NotFoundHandler))
	e.RouteNotFound("/v3/REST/*", apiKey(echo.NotFoundHandler))
	// Other methods answer 405 with Allow (before authentication: they
	// touch nothing).
	e.Match([]string{http.MethodPut, http.MethodPatch, http.MethodDelete}, "/v3/REST/apikey", methodNotAllowed("GET, POST"))
	e.Match([]string{http.MethodPost, http.MethodPatch, http.MethodDelete}, "/v3/REST/apikey/:id", methodNotAllowed("GET, PUT"))

	// Mailjet's Send API on the same keys, authenticated the same way;
	// messages go to the same relay (or sink) as SMTP.
	e.POST("/v3.1/send", apiKey(send.sendV31)).Name = "api.send.v31"
	e.POST("/v3/send", apiKey(send.sendV3)).Name = "api.send.v3"
	e.POST("/v3/send/message", apiKey(send.sendV3)).Name = "api.send.v3.message"
}
