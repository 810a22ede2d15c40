<?php

/**
 * ClientRegistry on OpenEMR's own OAuth client repository
 * (OpenEMR\Common\Auth\OpenIDConnect\Repositories\ClientRepository, src/Common/Auth/OpenIDConnect/...).
 *
 * Builds differ, so before using it we check that the class and each method we call exist (a build without
 * them gets a clear reason instead of a fatal error), and we never read insertNewClient()'s return value:
 * 7.0.3 returns the result of sqlQueryNoLog(INSERT), which is false on success, 8.x true; both throw on error.
 *
 * @license Apache-2.0
 */

namespace OpenEMR\Modules\BlueButtonDirect;

final class OpenEmrClientRegistry implements ClientRegistry
{
    public const REPOSITORY = 'OpenEMR\\Common\\Auth\\OpenIDConnect\\Repositories\\ClientRepository';
    public const SCOPES = 'OpenEMR\\Common\\Auth\\OpenIDConnect\\Repositories\\ScopeRepository';
    public const SERVER_CONFIG = 'OpenEMR\\FHIR\\Config\\ServerConfig';
    public const METHODS = ['generateClientId', 'generateClientSecret', 'generateRegistrationAccessToken',
        'generateRegistrationClientUriPath', 'insertNewClient', 'getClientEntity', 'saveIsEnabled'];

    private ?object $repository = null;

    public function __construct(private readonly string $repositoryClass = self::REPOSITORY)
    {
    }

    public function unsupportedReason(): ?string
    {
        if (!class_exists($this->repositoryClass)) {
            return 'This OpenEMR has no OAuth client repository (' . $this->repositoryClass . '): register the apps by hand under Admin → System → API Clients.';
        }
        foreach (self::METHODS as $method) {
            if (!method_exists($this->repositoryClass, $method)) {
                return "This OpenEMR's ClientRepository has no $method(): register the apps by hand under Admin → System → API Clients.";
            }
        }
        return null;
    }

    public function newClientId(): string
    {
        return (string) $this->repository()->generateClientId();
    }

    public function newClientSecret(): string
    {
        return (string) $this->repository()->generateClientSecret();
    }

    public function newRegistrationAccessToken(): string
    {
        return (string) $this->repository()->generateRegistrationAccessToken();
    }

    public function newRegistrationClientUriPath(): string
    {
        return (string) $this->repository()->generateRegistrationClientUriPath();
    }

    public function insert(string $clientId, array $params, string $siteId): void
    {
        $this->repository()->insertNewClient($clientId, $params, $siteId); // throws on a database error
        if (!$this->exists($clientId)) {
            throw new \RuntimeException('The client just registered cannot be read back.');
        }
    }

    public function exists(string $clientId): bool
    {
        // A plain lookup: getClientEntity() logs an error for every unknown id.
        return is_array(\sqlQueryNoLog('SELECT `client_id` FROM `oauth_clients` WHERE `client_id` = ?', [$clientId]));
    }

    public function findByName(string $name): ?string
    {
        $row = \sqlQueryNoLog(
            'SELECT `client_id` FROM `oauth_clients` WHERE `client_name` = ? ORDER BY `register_date` DESC LIMIT 1',
            [$name],
        );
        return is_array($row) && ($row['client_id'] ?? '') !== '' ? (string) $row['client_id'] : null;
    }

    public function isEnabled(string $clientId): bool
    {
        $entity = $this->entity($clientId);
        return $entity !== null && method_exists($entity, 'isEnabled') && (bool) $entity->isEnabled();
    }

    public function enable(string $clientId): void
    {
        $entity = $this->entity($clientId);
        if ($entity === null) {
            throw new \RuntimeException('The client cannot be read back.');
        }
        $this->repository()->saveIsEnabled($entity, true);
    }

    public function updateApp(string $clientId, string $redirectUri, string $launchUri, string $scope): void
    {
        \sqlStatementNoLog(
            'UPDATE `oauth_clients` SET `redirect_uri` = ?, `initiate_login_uri` = ?, `scope` = ? WHERE `client_id` = ?',
            [$redirectUri, $launchUri, $scope, $clientId],
            true,
        );
    }

    public function updateKeys(string $clientId, string $jwks, string $scope): void
    {
        // ClientRepository has no update method for these columns (the admin page edits them with SQL too).
        \sqlStatementNoLog('UPDATE `oauth_clients` SET `jwks` = ?, `jwks_uri` = NULL, `scope` = ? WHERE `client_id` = ?', [$jwks, $scope, $clientId], true);
    }

    /**
     * 8.x: ScopeRepository::getScopeEntityByIdentifier() with the FHIR ServerConfig (the registration endpoint's
     * own check). 7.0.x: that check needs the REST route map, so the scope is looked up in
     * ScopeRepository::systemScopes() (the list the server offers when rest_system_scopes_api is on).
     */
    public function acceptedScopes(array $scopes): array
    {
        $class = self::SCOPES;
        if (!class_exists($class)) {
            return $scopes; // nothing to check against: the registration endpoint will say
        }
        $accepted = [];
        if (method_exists($class, 'setServerConfig') && class_exists(self::SERVER_CONFIG)) {
            $repository = new $class();
            $repository->setServerConfig(new (self::SERVER_CONFIG)());
            foreach ($scopes as $scope) {
                if ($repository->getScopeEntityByIdentifier($scope) !== null) {
                    $accepted[] = $scope;
                }
            }
            return $accepted;
        }
        $system = method_exists($class, 'systemScopes') ? (new $class())->systemScopes() : [];
        $systemOn = !empty($GLOBALS['rest_system_scopes_api']);
        foreach ($scopes as $scope) {
            if (!str_starts_with($scope, 'system/') || ($systemOn && in_array($scope, $system, true))) {
                $accepted[] = $scope;
            }
        }
        return $accepted;
    }

    private function entity(string $clientId): ?object
    {
        $entity = $this->repository()->getClientEntity($clientId);
        return is_object($entity) ? $entity : null; // getClientEntity answers false for an unknown id
    }

    private function repository(): object
    {
        return $this->repository ??= new ($this->repositoryClass)();
    }
}
