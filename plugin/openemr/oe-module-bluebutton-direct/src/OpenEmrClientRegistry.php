<?php

/**
 * ClientRegistry on OpenEMR's own OAuth client repository
 * (OpenEMR\Common\Auth\OpenIDConnect\Repositories\ClientRepository, src/Common/Auth/OpenIDConnect/...).
 *
 * Every builds differs a little, so before using it we check that the class and each method we call exist;
 * a build without them gets a clear reason instead of a fatal error.
 *
 * @license Apache-2.0
 */

namespace OpenEMR\Modules\BlueButtonDirect;

final class OpenEmrClientRegistry implements ClientRegistry
{
    public const REPOSITORY = 'OpenEMR\\Common\\Auth\\OpenIDConnect\\Repositories\\ClientRepository';
    public const METHODS = ['generateClientId', 'generateRegistrationAccessToken', 'generateRegistrationClientUriPath',
        'insertNewClient', 'getClientEntity', 'saveIsEnabled'];

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

    public function newRegistrationAccessToken(): string
    {
        return (string) $this->repository()->generateRegistrationAccessToken();
    }

    public function newRegistrationClientUriPath(): string
    {
        return (string) $this->repository()->generateRegistrationClientUriPath();
    }

    public function insert(string $clientId, array $params, string $siteId): bool
    {
        return (bool) $this->repository()->insertNewClient($clientId, $params, $siteId);
    }

    public function exists(string $clientId): bool
    {
        return $this->entity($clientId) !== null;
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
            throw new \RuntimeException('The client just registered cannot be read back.');
        }
        $this->repository()->saveIsEnabled($entity, true);
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
