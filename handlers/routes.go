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
	e.GET("/healthz", health.live)
	e.GET("/readyz", health.ready)

	// Signing in and out.
	e.GET("/", auth.home)
	e.GET("/login", auth.loginForm)
	e.POST("/login", auth.login)
	e.GET("/signup", auth.signupForm)
	e.POST("/signup", auth.signup)
	e.POST("/logout", auth.logout, session)
	e.GET("/login/code", people.loginCodeForm)
	e.POST("/login/code", people.loginCode)
	e.GET("/password/forgot", people.forgotForm)
	e.POST("/password/forgot", people.forgot)
	e.GET("/password/reset", people.resetForm)
	e.POST("/password/reset", people.reset)
	// Invitation links (the token is in the query or the form, never in a
	// logged path).
	e.GET("/invite", people.invitation)
	e.POST("/invite", people.acceptInvitation)

	// The signed-in user's own account.
	e.GET("/account/password", account.passwordForm, signedIn)
	e.POST("/account/password", account.changePassword, signedIn)
	e.POST("/account/language", account.setLanguage, signedIn)
	e.GET("/account/time-zone", account.timeZoneForm, signedIn)
	e.POST("/account/time-zone", account.setTimeZone, signedIn)
	e.GET("/account/2fa", people.twoFactorPage, session)
	e.POST("/account/2fa/setup", people.twoFactorSetup, session)
	e.POST("/account/2fa", people.twoFactorConfirm, session)
	e.POST("/account/2fa/recovery-codes", people.recoveryCodes, signedIn)
	e.POST("/account/2fa/off", people.twoFactorOff, signedIn)
	e.POST("/account/switch", people.switchAccount, session)

	// The team of an account (owner and admins).
	e.GET("/team", people.team, teamManagers)
	e.POST("/team/invitations", people.invite, teamManagers)
	e.POST("/team/invitations/:id/revoke", people.revokeInvitation, teamManagers)
	e.GET("/team/members/:id", people.memberForm(false), teamManagers)
	e.POST("/team/members/:id", people.changeMember, teamManagers)
	e.GET("/team/members/:id/remove", people.memberForm(true), teamManagers)
	e.POST("/team/members/:id/remove", people.removeMember, teamManagers)
	e.POST("/team/require-2fa", people.require2FA, teamManagers)

	// API Key Management (the people of an account, by role and scope).
	e.GET("/keys", keys.list, keyViewers, cleanQuery)
	e.GET("/keys/:id/reset", keys.resetForm, keyManagers)
	e.POST("/keys/:id/reset", keys.reset, keyManagers)
	e.GET("/keys/:id/old-secrets/:secret/end", keys.endSecretForm, keyManagers)
	e.POST("/keys/:id/old-secrets/:secret/end", keys.endSecret, keyManagers)
	e.GET("/keys/:id/rename", keys.renameForm, keyManagers)
	e.POST("/keys/:id/rename", keys.rename, keyManagers)
	e.GET("/keys/:id/deactivate", keys.deactivateForm, keyManagers)
	e.POST("/keys/:id/deactivate", keys.deactivate, keyManagers)
	e.POST("/keys/:id/activate", keys.activate, keyManagers)
	e.GET("/keys/:id/usage", keys.usage, keyViewers)

	// Sub-accounts and requests for more.
	e.GET("/subaccounts", subaccounts.list, keyViewers, cleanQuery)
	e.GET("/subaccounts/new", subaccounts.newForm, creators)
	e.POST("/subaccounts", subaccounts.create, creators)
	e.POST("/subaccounts/requests", subaccounts.requestMore, requesters)

	// Support console (role support; anyone else gets an audited 403).
	e.GET("/support", support.home, staff(models.RoleSupport), cleanQuery)
	e.GET("/support/accounts/:id", support.account, staff(models.RoleSupport))
	e.POST("/support/accounts/:id/limit", support.setLimit, staff(models.RoleSupport))
	e.POST("/support/requests/:id/approve", support.decide(true), staff(models.RoleSupport))
	e.POST("/support/requests/:id/deny", support.decide(false), staff(models.RoleSupport))
	e.POST("/support/accounts/:id/suspend", support.suspend(true), staff(models.RoleSupport))
	e.POST("/support/accounts/:id/reinstate", support.suspend(false), staff(models.RoleSupport))

	// Audit log: owners see their account tree, support and auditors all.
	e.GET("/audit", audit.page, anyRole, cleanQuery)
	e.POST("/audit/export", audit.export, anyRole, web.GzipExport)
	e.GET("/audit/heads/:seq", audit.head, anyRole)
	e.POST("/audit/reviews", audit.review, reviewers)

	// Mailjet-compatible REST API: HTTP Basic with API key and secret key;
	// no session cookie and no CSRF (web gives /v3 and /v3.1 a lean chain).
	// Authentication wraps each handler here, once, rather than as route
	// middleware Echo would wrap again for every request. Unknown paths
	// under /v3/REST authenticate first, as the routes do.
	apiKey := s.APIKeyAuth
	e.GET("/v3/REST/apikey", apiKey(rest.list))
	e.POST("/v3/REST/apikey", apiKey(rest.create))
	e.GET("/v3/REST/apikey/:id", apiKey(rest.get))
	e.PUT("/v3/REST/apikey/:id", apiKey(rest.update))
	e.RouteNotFound("/v3/REST", apiKey(echo.NotFoundHandler))
	e.RouteNotFound("/v3/REST/*", apiKey(echo.NotFoundHandler))
	// Other methods answer 405 with Allow (before authentication: they
	// touch nothing).
	e.Match([]string{http.MethodPut, http.MethodPatch, http.MethodDelete}, "/v3/REST/apikey", methodNotAllowed("GET, POST"))
	e.Match([]string{http.MethodPost, http.MethodPatch, http.MethodDelete}, "/v3/REST/apikey/:id", methodNotAllowed("GET, PUT"))

	// Mailjet's Send API on the same keys, authenticated the same way;
	// messages go to the same relay (or sink) as SMTP.
	e.POST("/v3.1/send", apiKey(send.sendV31))
	e.POST("/v3/send", apiKey(send.sendV3))
	e.POST("/v3/send/message", apiKey(send.sendV3))
}
