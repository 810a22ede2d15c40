<?php

/**
 * The part of OpenEMR's OAuth client store the module needs to register its SMART apps.
 *
 * An interface so SmartClientRegistrar's decisions (what to register, when to reuse, when to skip) are tested
 * without a database; OpenEmrClientRegistry is the one implementation on OpenEMR's ClientRepository.
 *
 * @license Apache-2.0
 */

namespace OpenEMR\Modules\BlueButtonDirect;

interface ClientRegistry
{
    /** Null when this OpenEMR build can register clients from a module; otherwise why not (for the admin). */
    public function unsupportedReason(): ?string;

    public function newClientId(): string;

    public function newClientSecret(): string;

    public function newRegistrationAccessToken(): string;

    public function newRegistrationClientUriPath(): string;

    /**
     * Insert an oauth_clients row (ClientRepository::insertNewClient keys: client_role, client_name,
     * redirect_uris, initiate_login_uri, scope, contacts, registration_access_token, ...). Throws when the
     * insert fails; OpenEMR's return value is not a success flag (7.0.3 answers false on success).
     *
     * @param array<string, mixed> $params
     */
    public function insert(string $clientId, array $params, string $siteId): void;

    /** Whether a client with this id exists (a stored id may point at a client an admin deleted). */
    public function exists(string $clientId): bool;

    /** The id of an existing client with this exact name (left by an earlier attempt), or null. */
    public function findByName(string $name): ?string;

    public function isEnabled(string $clientId): bool;

    /** Enable the client (user/ and system/ scopes need an admin's approval: enabling the module is that approval). */
    public function enable(string $clientId): void;

    /** Replace a launch app's redirect URI, launch URI and scopes (the sidecar's public URL may have changed). */
    public function updateApp(string $clientId, string $redirectUri, string $launchUri, string $scope): void;

    /** Replace the registered public keys (JWKS JSON) and scopes of a client. */
    public function updateKeys(string $clientId, string $jwks, string $scope): void;

    /**
     * The scopes of the list this OpenEMR's authorization server accepts (its ScopeRepository), in order.
     *
     * @param list<string> $scopes
     * @return list<string>
     */
    public function acceptedScopes(array $scopes): array;
}
